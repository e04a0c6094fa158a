/** What the request's token may do: the admin UI asks this before it shows any write button. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { ServerEnv } from "../../http/auth.js";
import { errors, json } from "./keys.js";

/** Answered across a token's namespaces, so a token of several needs no header to ask. */
export const SESSION_ROUTE = "/api/session";

const Session = z
  .object({
    tokens: z.boolean().openapi({ description: "whether the server checks tokens at all" }),
    name: z.string().nullable().openapi({ description: "the token's name in the tokens file" }),
    access: z.enum(["read", "write", "admin"]),
    namespace: z
      .string()
      .openapi({ description: 'the namespace this request works in (`""`: the default)' }),
    namespaces: z
      .array(z.string())
      .openapi({ description: 'the namespaces the token may use; `["*"]` for any' }),
  })
  .openapi("Session");

export function sessionRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "get",
      path: SESSION_ROUTE,
      tags: ["discovery"],
      summary: "What the request's token may do",
      description:
        "The token's access (`read`, `write`, `admin`), its namespaces and the namespace this request works in. Without a tokens file every request is an admin of every namespace.",
      responses: { 200: json(Session), ...errors },
    }),
    (c) => {
      const { grant, access, namespace } = c.get("scope");
      return c.json(
        {
          tokens: grant !== null,
          name: grant?.name ?? null,
          access,
          namespace,
          namespaces: grant ? [...grant.namespaces] : ["*"],
        },
        200,
      );
    },
  );
}
