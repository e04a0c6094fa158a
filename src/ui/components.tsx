/** Pieces every page uses: links, key parts, loading and error states, confirmations. */
import {
  type AnchorHTMLAttributes,
  createContext,
  Fragment,
  type MouseEvent,
  type ReactNode,
  useContext,
  useEffect,
  useRef,
} from "react";
import type { KvKeyPart } from "../codec/key.js";
import { ApiError, type Session } from "./api.js";
import { kindOf, partLabel } from "./keys.js";
import { navigate } from "./router.js";

/** An anchor that navigates inside the page (a middle click still opens a tab). */
export function Link({
  href,
  onClick: also,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    also?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey) return;
    if (event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a {...rest} href={href} onClick={onClick} />;
}

/** A key, each part labelled with its type. */
export function KeyParts({ parts }: { parts: readonly KvKeyPart[] }) {
  if (parts.length === 0) return <span className="muted">(root)</span>;
  return (
    <span className="key">
      {parts.map((part, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: a key's parts are positional
        <Fragment key={i}>
          {i > 0 && <span className="sep">/</span>}
          <Part part={part} />
        </Fragment>
      ))}
    </span>
  );
}

export function Part({ part }: { part: KvKeyPart }) {
  const kind = kindOf(part);
  return (
    <span className={`part part-${kind}`} title={kind}>
      {partLabel(part)}
    </span>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="loading" role="status">
      {what}…
    </p>
  );
}

/** The server's error, as it said it, with its code. */
export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const code = error instanceof ApiError ? error.code : "ERROR";
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div className="error" role="alert">
      <strong>{code}</strong> {message}
      {onRetry && (
        <button type="button" className="small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** A modal confirmation for destructive actions; Escape cancels, Enter on the button confirms. */
export function Confirm(props: {
  title: string;
  children: ReactNode;
  action: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      className="confirm"
      aria-label={props.title}
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <h2>{props.title}</h2>
      <div>{props.children}</div>
      <div className="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" className="danger" onClick={props.onConfirm}>
          {props.action}
        </button>
      </div>
    </dialog>
  );
}

export const SessionContext = createContext<Session | null>(null);

/** Whether the token may write; the server refuses anyway, this only says so up front. */
export function useCanWrite(): boolean {
  const session = useContext(SessionContext);
  return session !== null && session.access !== "read";
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** The server's error and, for a value a schema refused, its issues. */
export function Issues({ error }: { error: unknown }) {
  const issues = error instanceof ApiError ? error.issues : undefined;
  return (
    <>
      <ErrorBox error={error} />
      {issues && (
        <ul className="issues">
          {issues.map((issue) => (
            <li key={`${issue.path.join(".")}: ${issue.message}`}>
              <code>{issue.path.join(".") || "(value)"}</code> {issue.message}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
