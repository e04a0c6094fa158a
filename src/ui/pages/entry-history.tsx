/** An entry's revisions, and a line diff of two of them (or of a conflict's two sides). */
import { useState } from "react";
import type { Entry, Revision } from "../api.js";
import { formatTime } from "../components.js";
import { diffLines } from "../diff.js";

export const pretty = (json: unknown) => JSON.stringify(json, null, 2);

export function DiffView({ before, after }: { before: string; after: string }) {
  return (
    <pre className="diff" data-testid="diff">
      {diffLines(before, after).map((line, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: lines are positional
        <span key={i} className={line.kind}>
          {line.kind === "add" ? "+ " : line.kind === "del" ? "- " : "  "}
          {line.text}
        </span>
      ))}
    </pre>
  );
}

export function History({
  revisions,
  current,
}: {
  revisions: Revision[];
  current: Entry | undefined;
}) {
  const [a, setA] = useState(revisions[1]?.versionstamp ?? "");
  const [b, setB] = useState(revisions[0]?.versionstamp ?? "");
  if (revisions.length === 0) return <p className="muted">No revisions kept for this key.</p>;
  const byStamp = new Map(revisions.map((r) => [r.versionstamp, r]));
  const text = (stamp: string) => {
    const revision = byStamp.get(stamp);
    if (!revision) return undefined;
    if (revision.dataHash === null) return "(deleted)";
    if ("value" in revision) return pretty(revision.value);
    if (current && current.versionstamp === stamp) return pretty(current.value);
    return undefined;
  };
  const left = text(a);
  const right = text(b);
  return (
    <>
      <table className="grid" aria-label="Revisions">
        <thead>
          <tr>
            <th>A</th>
            <th>B</th>
            <th>Version</th>
            <th>Versionstamp</th>
            <th>When</th>
            <th>By</th>
            <th>Comment</th>
            <th>Data hash</th>
          </tr>
        </thead>
        <tbody>
          {revisions.map((r) => (
            <tr key={r.versionstamp}>
              <td>
                <input
                  type="radio"
                  name="diff-a"
                  aria-label={`compare from version ${r.version}`}
                  checked={a === r.versionstamp}
                  onChange={() => setA(r.versionstamp)}
                />
              </td>
              <td>
                <input
                  type="radio"
                  name="diff-b"
                  aria-label={`compare to version ${r.version}`}
                  checked={b === r.versionstamp}
                  onChange={() => setB(r.versionstamp)}
                />
              </td>
              <td>{r.version}</td>
              <td className="mono">{r.versionstamp}</td>
              <td>{formatTime(r.timestamp)}</td>
              <td>{r.modifiedBy ?? "—"}</td>
              <td>{r.comment ?? "—"}</td>
              <td className="mono">
                {r.dataHash === null ? "deleted" : `${r.dataHash.slice(0, 12)}…`}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Diff A → B</h2>
      {revisions.length < 2 ? (
        <p className="muted">One revision so far: nothing to compare.</p>
      ) : a === b ? (
        <p className="muted">Pick two different revisions.</p>
      ) : left === undefined || right === undefined ? (
        <p className="muted">
          Past values are kept only under the prefixes the server keeps values for (
          <code>--keep-values</code>); these revisions differ by data hash only
          {byStamp.get(a)?.dataHash === byStamp.get(b)?.dataHash
            ? " — and their hashes are equal"
            : ""}
          .
        </p>
      ) : (
        <DiffView before={left} after={right} />
      )}
    </>
  );
}
