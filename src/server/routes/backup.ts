/**
 * `GET /api/admin/backup`: a consistent backup of the whole database, streamed as a SQLite file
 * (which `openKv` opens as it is). It copies every namespace, so it needs an admin token of
 * every namespace (`"*"`). The backup is written to a temporary file first (under the system's
 * temporary folder, `TMPDIR`), whose name is removed as soon as it is open for streaming, so
 * an interrupted download leaves nothing behind. A server on PostgreSQL answers 501: back its
 * database up into a schema with `cellar backup --db postgres://…` instead.
 */
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { coreOf, WHOLE_DATABASE } from "../../core/surface.js";
import { KvError } from "../../errors.js";
import { type RequestScope, requireAccess, type ServerEnv } from "../../http/auth.js";
import { errors } from "./keys.js";

export const BACKUP_ROUTE = "/api/admin/backup";

export function backupRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "get",
      path: BACKUP_ROUTE,
      tags: ["admin"],
      summary: "Stream a consistent backup of the whole database (admin of every namespace)",
      description:
        'A SQLite file holding every namespace as of one commit, taken while writes go on (SQLite\'s online backup). `X-Cellar-Versionstamp` names the commit. Needs an admin token whose namespaces are `["*"]`; a server on PostgreSQL answers 501.',
      responses: {
        200: {
          description: "The backup, a SQLite database file",
          content: {
            "application/vnd.sqlite3": { schema: z.string().openapi({ format: "binary" }) },
          },
        },
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "admin");
      assertWholeDatabase(c.get("scope"));
      const { core } = coreOf(c.get("kv"));
      const folder = await mkdtemp(join(tmpdir(), "cellar-backup-"));
      try {
        const file = join(folder, "backup.db");
        const info = await core.backup({ file }, WHOLE_DATABASE);
        const handle = await open(file, "r");
        const stream = handle.createReadStream();
        return new Response(Readable.toWeb(stream) as ReadableStream, {
          status: 200,
          headers: {
            "content-type": "application/vnd.sqlite3",
            "content-length": String(info.bytes),
            "content-disposition": `attachment; filename="cellar-${info.versionstamp}.db"`,
            "x-cellar-versionstamp": info.versionstamp,
            "x-cellar-entries": String(info.entries),
          },
        });
      } finally {
        // The open handle keeps the bytes readable; the name goes now.
        await rm(folder, { recursive: true, force: true });
      }
    },
  );
}

function assertWholeDatabase(scope: RequestScope): void {
  if (scope.grant !== null && !scope.grant.namespaces.includes("*"))
    throw new KvError(
      "FORBIDDEN",
      'a backup copies every namespace: it needs an admin token whose namespaces are ["*"]',
    );
}
