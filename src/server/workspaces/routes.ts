/**
 * A workspace over REST, on the same room doc as its sync socket, so a write here reaches every
 * connected client once it is committed, and a client's edit shows here at once:
 *
 * - `GET /workspaces/{id}/kv` → `{ data: { key: value, … } }`; `GET|PUT|DELETE
 *   /workspaces/{id}/kv/{key}`: `PUT { value }` (or `{ data }`) answers `{ data }`, `DELETE`
 *   resets and answers the default;
 * - `GET /workspaces/{id}/tables/{table}` → `{ data: [row, …] }`; `GET|PUT|DELETE
 *   /workspaces/{id}/tables/{table}/{rowId}`: `PUT { value }` upserts the row (the path gives
 *   its id), `DELETE` answers `{ data: { deleted } }`;
 * - `POST /workspaces/{id}/actions/{name}` `{ input }` → `{ data }`, and `GET` for queries
 *   (`?input=` JSON).
 *
 * Values are in the columns' JSON forms (text as a string, dates as `{ date, timeZone }`). A
 * value that does not validate answers 400 with the issues and changes nothing; a write answers
 * once it is committed. Reads need a token with read access to namespace `workspace-{id}`,
 * writes and mutations write access.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { ValidationError } from "../../typed/schemas.js";
import { workspaceNamespace } from "../../workspace/client.js";
import { type BoundWorkspace, bindWorkspace } from "../../workspace/doc.js";
import type { KvHelper } from "../../workspace/kv.js";
import type { TableHelper } from "../../workspace/tables.js";
import { plain, validating } from "../routes/typed.js";
import { documentWorkspace } from "./openapi.js";
import type { Room, Rooms } from "./rooms.js";

/** The origin of the transactions REST writes make. */
export const REST_ORIGIN = Symbol.for("cellar.workspace.rest");

/**
 * Registers the routes of `rooms`' workspaces and their OpenAPI descriptions.
 *
 * @example
 * workspaceRoutes(app, new Rooms(kv, [appWorkspace]));
 */
export function workspaceRoutes(app: OpenAPIHono<ServerEnv>, rooms: Rooms): void {
  const bound = new WeakMap<Room, BoundWorkspace>();
  /** Runs `fn` on the request's workspace, bound to its room's doc. */
  const withWorkspace = <T>(
    c: Context<ServerEnv>,
    fn: (workspace: BoundWorkspace, room: Room) => T | Promise<T>,
  ): Promise<T> => {
    const id = c.req.param("id") ?? "";
    rooms.definition(id);
    const namespace = workspaceNamespace(id);
    if (!c.get("scope").allows(namespace)) {
      throw new KvError(
        "FORBIDDEN",
        `this token may not use namespace ${JSON.stringify(namespace)}`,
      );
    }
    return rooms.use(id, (room) => {
      let workspace = bound.get(room);
      if (!workspace) {
        workspace = bindWorkspace(room.definition, room.doc, { origin: REST_ORIGIN });
        bound.set(room, workspace);
      }
      return fn(workspace, room);
    });
  };
  const write = <T>(c: Context<ServerEnv>, fn: (workspace: BoundWorkspace) => T): Promise<T> =>
    withWorkspace(c, async (workspace, room) => {
      const result = fn(workspace);
      await room.committed();
      return result;
    });

  app.get("/workspaces/:id/kv", async (c) => {
    requireAccess(c, "read");
    return c.json({ data: await withWorkspace(c, (w) => w.$kv.$toJSON()) }, 200);
  });

  app.get("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "read");
    return c.json({ data: await withWorkspace(c, (w) => kvHelper(w, c).toJSON()) }, 200);
  });

  app.put("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "write");
    const value = bodyValue(await c.req.json());
    return validating(c, async () => {
      const data = await write(c, (w) => {
        const helper = kvHelper(w, c);
        helper.setJSON(value);
        return helper.toJSON();
      });
      return c.json({ data }, 200);
    });
  });

  app.delete("/workspaces/:id/kv/:key", async (c) => {
    requireAccess(c, "write");
    const data = await write(c, (w) => {
      const helper = kvHelper(w, c);
      helper.reset();
      return helper.toJSON();
    });
    return c.json({ data }, 200);
  });

  app.get("/workspaces/:id/tables/:table", async (c) => {
    requireAccess(c, "read");
    return c.json({ data: await withWorkspace(c, (w) => tableHelper(w, c).toJSON()) }, 200);
  });

  app.get("/workspaces/:id/tables/:table/:row", async (c) => {
    requireAccess(c, "read");
    const row = c.req.param("row");
    const data = await withWorkspace(c, (w) => tableHelper(w, c).getJSON(row));
    if (data === null) {
      throw new KvError(
        "NOT_FOUND",
        `table ${JSON.stringify(c.req.param("table"))} has no row ${JSON.stringify(row)}`,
      );
    }
    return c.json({ data }, 200);
  });

  app.put("/workspaces/:id/tables/:table/:row", async (c) => {
    requireAccess(c, "write");
    const value = bodyValue(await c.req.json());
    const row = c.req.param("row");
    return validating(c, async () => {
      const data = await write(c, (w) => {
        const table = tableHelper(w, c);
        table.upsertJSON(rowWithId(value, table.idField, row));
        return table.getJSON(row);
      });
      return c.json({ data }, 200);
    });
  });

  app.delete("/workspaces/:id/tables/:table/:row", async (c) => {
    requireAccess(c, "write");
    const row = c.req.param("row");
    const deleted = await write(c, (w) => tableHelper(w, c).delete(row));
    return c.json({ data: { deleted } }, 200);
  });

  const runAction = (c: Context<ServerEnv>, input: unknown) =>
    validating(c, async () => {
      const name = c.req.param("name") ?? "";
      const data = await withWorkspace(c, async (w, room) => {
        const action = actionOf(w, name);
        if (c.req.method === "GET" && action.kind !== "query") {
          throw new KvError(
            "METHOD_NOT_ALLOWED",
            `action ${JSON.stringify(name)} is a mutation: POST it`,
          );
        }
        requireAccess(c, action.kind === "query" ? "read" : "write");
        const result = await action(input);
        if (action.kind === "mutation") await room.committed();
        return result;
      });
      return c.json({ data: plain(data) }, 200);
    });

  app.post("/workspaces/:id/actions/:name", async (c) => {
    const body: unknown = c.req.header("content-length") === "0" ? {} : await c.req.json();
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new KvError("INVALID_REQUEST", 'the body is { "input": … }');
    }
    return runAction(c, (body as { input?: unknown }).input);
  });

  app.get("/workspaces/:id/actions/:name", async (c) => {
    const given = c.req.query("input");
    let input: unknown;
    try {
      input = given === undefined ? undefined : JSON.parse(given);
    } catch {
      throw new KvError("INVALID_REQUEST", "input is the action's input as JSON");
    }
    return runAction(c, input);
  });

  for (const definition of rooms.definitions.values()) documentWorkspace(app, definition);
}

/** `{ value }`, or `{ data }` as the answers carry it. */
function bodyValue(body: unknown): unknown {
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    if ("value" in body) return body.value;
    if ("data" in body) return body.data;
  }
  throw new KvError("INVALID_REQUEST", 'the body is { "value": … }');
}

/** The row of a PUT, whose id is the path's: a different id in the body is refused. */
function rowWithId(value: unknown, idField: string, id: string): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const given = (value as Record<string, unknown>)[idField];
  if (given !== undefined && given !== id) {
    throw new ValidationError(`row ${JSON.stringify(id)}`, [
      {
        path: [idField],
        message: `the path names row ${JSON.stringify(id)}, the body ${JSON.stringify(given)}`,
      },
    ]);
  }
  return { ...value, [idField]: id };
}

function kvHelper(workspace: BoundWorkspace, c: Context<ServerEnv>): KvHelper {
  const name = c.req.param("key") ?? "";
  if (!Object.hasOwn(workspace.definition.kv, name)) {
    throw new KvError(
      "NOT_FOUND",
      `workspace ${JSON.stringify(workspace.definition.id)} has no KV key ${JSON.stringify(name)}`,
    );
  }
  return (workspace.$kv as unknown as Record<string, KvHelper>)[name]!;
}

function tableHelper(workspace: BoundWorkspace, c: Context<ServerEnv>): TableHelper {
  const name = c.req.param("table") ?? "";
  if (!Object.hasOwn(workspace.definition.tables, name)) {
    throw new KvError(
      "NOT_FOUND",
      `workspace ${JSON.stringify(workspace.definition.id)} has no table ${JSON.stringify(name)}`,
    );
  }
  return (workspace.$tables as unknown as Record<string, TableHelper>)[name]!;
}

type Caller = ((input?: unknown) => Promise<unknown>) & { readonly kind: "mutation" | "query" };

function actionOf(workspace: BoundWorkspace, name: string): Caller {
  const actions = workspace.actions as Record<string, Caller>;
  if (!Object.hasOwn(actions, name)) {
    throw new KvError(
      "NOT_FOUND",
      `workspace ${JSON.stringify(workspace.definition.id)} has no action ${JSON.stringify(name)}`,
    );
  }
  return actions[name]!;
}
