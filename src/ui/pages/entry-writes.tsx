/**
 * How the entry view writes: the value editor, the check of a draft before it is offered for
 * saving, and the one checked commit every write is.
 */
import { valueFromJson } from "../../wire/json.js";
import { ApiError, api, type JsonKey } from "../api.js";

/** Who the UI's writes name in the entries' metadata. */
const MODIFIED_BY = "admin-ui";

/** The draft's JSON, checked as the server will read it; the error says what is wrong. */
export function parseValue(
  text: string,
): { ok: true; json: unknown } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not JSON: ${(error as Error).message}` };
  }
  try {
    valueFromJson(json);
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
  return { ok: true, json };
}

export type Mutation = {
  type: "set" | "delete";
  key: JsonKey;
  value?: unknown;
  expireIn?: number;
  comment?: string;
};

/** One checked commit: `versionstamp` is what the page read (`null`: the key must be absent). */
export function commit(key: JsonKey, versionstamp: string | null, mutation: Mutation) {
  const write = mutation.type === "set" ? { ...mutation, modifiedBy: MODIFIED_BY } : mutation;
  return api<{ ok: true; versionstamp: string }>("POST", "/api/atomic", {
    checks: [{ key, versionstamp }],
    mutations: [write],
  });
}

export const isConflict = (error: unknown) =>
  error instanceof ApiError && error.code === "CHECK_FAILED";

export function ValueEditor(props: {
  text: string;
  onChange: (text: string) => void;
  error?: string | undefined;
}) {
  return (
    <>
      <label className="block">
        <span>
          Value as JSON: tagged values such as <code>{'{"$bigint": "1"}'}</code>,{" "}
          <code>{'{"$date": "…"}'}</code>, <code>{'{"$bytes": "…"}'}</code> or{" "}
          <code>{'{"$map": [[k, v]]}'}</code> keep their types
        </span>
        <textarea
          className="editor"
          spellCheck={false}
          value={props.text}
          aria-invalid={props.error !== undefined}
          aria-label="Value"
          rows={Math.min(30, Math.max(10, props.text.split("\n").length + 1))}
          onChange={(e) => props.onChange(e.target.value)}
        />
      </label>
      {props.error !== undefined && (
        <p className="error" role="alert" data-testid="invalid">
          <strong>INVALID_VALUE</strong> {props.error}
        </p>
      )}
    </>
  );
}
