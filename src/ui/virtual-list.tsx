/**
 * A list that renders only the rows in view, so a page of a million keys costs what a screenful
 * does, and asks for the next page of rows when the reader nears the end of what is loaded.
 * Keyboard: j/k or the arrows move the selection, Enter opens it, Home/End jump.
 */
import { type KeyboardEvent, type ReactNode, useEffect, useRef, useState } from "react";

const ROW = 32;
const OVERSCAN = 8;

export function VirtualList<T>(props: {
  label: string;
  rows: readonly T[];
  hasMore: boolean;
  loadingMore: boolean;
  onNearEnd: () => void;
  onOpen: (row: T) => void;
  render: (row: T) => ReactNode;
  rowKey: (row: T) => string;
  header?: ReactNode;
}) {
  const { rows, hasMore, loadingMore, onNearEnd } = props;
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(560);
  const [selected, setSelected] = useState(0);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const observer = new ResizeObserver(() => setHeight(element.clientHeight));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);

  useEffect(() => {
    if (hasMore && !loadingMore && last >= rows.length - OVERSCAN) onNearEnd();
  }, [hasMore, loadingMore, last, rows.length, onNearEnd]);

  const select = (index: number) => {
    const next = Math.max(0, Math.min(rows.length - 1, index));
    setSelected(next);
    const element = box.current;
    if (!element) return;
    if (next * ROW < element.scrollTop) element.scrollTop = next * ROW;
    else if ((next + 1) * ROW > element.scrollTop + element.clientHeight) {
      element.scrollTop = (next + 1) * ROW - element.clientHeight;
    }
  };

  const onKeyDown = (event: KeyboardEvent) => {
    const page = Math.max(1, Math.floor(height / ROW) - 1);
    const moves: Record<string, number> = {
      j: 1,
      ArrowDown: 1,
      k: -1,
      ArrowUp: -1,
      PageDown: page,
      PageUp: -page,
      Home: -rows.length,
      End: rows.length,
    };
    const move = moves[event.key];
    if (move !== undefined) {
      event.preventDefault();
      select(selected + move);
    } else if (event.key === "Enter" && rows[selected] !== undefined) {
      event.preventDefault();
      props.onOpen(rows[selected]);
    }
  };

  return (
    <div>
      {props.header && <div className="vhead">{props.header}</div>}
      <div
        ref={box}
        className="vlist"
        role="listbox"
        aria-label={props.label}
        aria-activedescendant={rows.length > 0 ? `row-${selected}` : undefined}
        tabIndex={0}
        onScroll={(e) => setTop(e.currentTarget.scrollTop)}
        onKeyDown={onKeyDown}
      >
        <div style={{ height: (rows.length + (hasMore ? 1 : 0)) * ROW }}>
          {rows.slice(first, last).map((row, i) => {
            const index = first + i;
            return (
              <div
                key={props.rowKey(row)}
                id={`row-${index}`}
                role="option"
                aria-selected={index === selected}
                className="vrow"
                style={{ top: index * ROW, height: ROW }}
                onClick={() => {
                  setSelected(index);
                  props.onOpen(row);
                }}
                tabIndex={-1}
                onKeyDown={(event) => {
                  if (event.key === "Enter") props.onOpen(row);
                }}
              >
                {props.render(row)}
              </div>
            );
          })}
          {hasMore && (
            <div className="vrow muted" style={{ top: rows.length * ROW, height: ROW }}>
              Loading more…
            </div>
          )}
        </div>
      </div>
    </div>
  );
}
