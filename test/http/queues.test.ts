// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are untyped JSON
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../../src/server/index.js";

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ db: ":memory:", port: 0, pingInterval: 200 });
});
afterAll(() => server.close());

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(server.url + path, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

/** The events of a Server-Sent Events response, one at a time. */
async function* sseEvents(res: Response): AsyncGenerator<{ event: string; data: any }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const event = lines.find((l) => l.startsWith("event: "))?.slice(7);
        const data = lines.find((l) => l.startsWith("data: "))?.slice(6);
        if (event && data) yield { event, data: JSON.parse(data) };
      }
    }
  } finally {
    await reader.cancel();
  }
}

describe("queues over HTTP", () => {
  it("enqueues, polls with a lock token, acks, and refuses a stale token", async () => {
    const enq = await call("POST", "/api/queues/mail/messages", {
      value: { to: "ada" },
      priority: 2,
    });
    expect(enq).toMatchObject({ status: 200, body: { ok: true, deduplicated: false } });
    await call("POST", "/api/queues/mail/messages", { value: { to: "bob" } });
    const polled = await call("POST", "/api/queues/mail/dequeue", {
      limit: 10,
      visibilityTimeout: 5000,
    });
    expect(polled.body.messages.map((m: any) => m.value.to)).toEqual(["ada", "bob"]);
    const [first, second] = polled.body.messages;
    expect((await call("POST", "/api/queues/mail/ack", { token: first.token })).status).toBe(200);
    const stale = await call("POST", "/api/queues/mail/ack", { token: first.token });
    expect(stale).toMatchObject({ status: 409, body: { error: { code: "INVALID_TOKEN" } } });
    expect(
      (await call("POST", "/api/queues/mail/extend", { token: second.token, ms: 1000 })).status,
    ).toBe(200);
    expect((await call("POST", "/api/queues/mail/ack", { token: second.token })).status).toBe(200);
    expect((await call("GET", "/api/queues/mail/stats")).body).toMatchObject({
      pending: 0,
      inFlight: 0,
      dead: 0,
    });
  });

  it("dead-letters after the last nack, writes keysIfUndelivered, and manages the DLQ", async () => {
    const { body } = await call("POST", "/api/queues/jobs/messages", {
      value: { $bigint: "7" },
      backoffSchedule: [],
      keysIfUndelivered: [["failed", "job"]],
    });
    const polled = await call("POST", "/api/queues/jobs/dequeue", {});
    await call("POST", "/api/queues/jobs/nack", {
      token: polled.body.messages[0].token,
      error: "broken",
    });
    expect((await call("GET", "/api/keys/failed/job")).body.value).toEqual({ $bigint: "7" });
    const dead = await call("GET", "/api/queues/jobs/dlq");
    expect(dead.body.messages).toMatchObject([{ id: body.id, error: "broken", attempts: 1 }]);
    expect((await call("GET", `/api/queues/jobs/dlq/${body.id}`)).body.id).toBe(body.id);
    expect((await call("POST", `/api/queues/jobs/dlq/${body.id}/requeue`)).body.count).toBe(1);
    const again = await call("POST", "/api/queues/jobs/dequeue", {});
    await call("POST", "/api/queues/jobs/nack", { token: again.body.messages[0].token });
    expect((await call("DELETE", `/api/queues/jobs/dlq/${body.id}`)).body.count).toBe(1);
    expect((await call("GET", `/api/queues/jobs/dlq/${body.id}`)).status).toBe(404);
    expect((await call("DELETE", "/api/queues/jobs/dlq")).body.count).toBe(0);
  });

  it("long-polls until a message arrives", async () => {
    const waiting = call("POST", "/api/queues/slow/dequeue", { wait: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    await call("POST", "/api/queues/slow/messages", { value: "late" });
    expect((await waiting).body.messages.map((m: any) => m.value)).toEqual(["late"]);
  });

  it("streams messages to a listener, at most `concurrency` unsettled at once", async () => {
    for (let i = 0; i < 3; i++) await call("POST", "/api/queues/stream/messages", { value: i });
    const controller = new AbortController();
    const res = await fetch(`${server.url}/api/queues/stream/listen?concurrency=2`, {
      signal: controller.signal,
    });
    const events = sseEvents(res);
    const first = (await events.next()).value!;
    const second = (await events.next()).value!;
    expect([first.data.value, second.data.value]).toEqual([0, 1]);
    expect((await call("GET", "/api/queues/stream/stats")).body).toMatchObject({
      inFlight: 2,
      pending: 1,
    });
    await call("POST", "/api/queues/stream/ack", { token: first.data.token });
    const third = (await events.next()).value!;
    expect(third.data.value).toBe(2);
    await call("POST", "/api/queues/stream/ack", { token: second.data.token });
    await call("POST", "/api/queues/stream/ack", { token: third.data.token });
    controller.abort();
    await events.return(undefined);
    expect((await call("GET", "/api/queues/stream/stats")).body).toMatchObject({
      inFlight: 0,
      pending: 0,
      dead: 0,
    });
  });

  it("keeps an extended lease in its listener's slot", async () => {
    for (const value of ["held", "waiting"])
      await call("POST", "/api/queues/slow-work/messages", { value });
    const controller = new AbortController();
    const res = await fetch(
      `${server.url}/api/queues/slow-work/listen?concurrency=1&visibilityTimeout=300`,
      {
        signal: controller.signal,
      },
    );
    const events = sseEvents(res);
    const first = (await events.next()).value!;
    expect(first.data.value).toBe("held");
    await call("POST", "/api/queues/slow-work/extend", { token: first.data.token, ms: 5000 });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call("GET", "/api/queues/slow-work/stats")).body).toMatchObject({
      inFlight: 1,
      pending: 1,
    });
    await call("POST", "/api/queues/slow-work/ack", { token: first.data.token });
    expect((await events.next()).value!.data.value).toBe("waiting");
    controller.abort();
    await events.return(undefined).catch(() => {});
  });

  it("nacks what a listener still holds when it disconnects", async () => {
    await call("POST", "/api/queues/gone/messages", { value: "x", backoffSchedule: [0] });
    const controller = new AbortController();
    const res = await fetch(`${server.url}/api/queues/gone/listen`, { signal: controller.signal });
    const events = sseEvents(res);
    expect((await events.next()).value!.data.value).toBe("x");
    controller.abort();
    await events.return(undefined).catch(() => {});
    let stats: Record<string, any> = {};
    for (let i = 0; i < 50 && stats.pending !== 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      stats = (await call("GET", "/api/queues/gone/stats")).body;
    }
    expect(stats).toMatchObject({ pending: 1, inFlight: 0 });
  });

  it("answers 4xx with a code for bad queue requests", async () => {
    expect((await call("POST", "/api/queues/q/messages", { value: 1, delay: -5 })).status).toBe(
      400,
    );
    expect((await call("POST", "/api/queues/q/ack", {})).body.error.code).toBe("INVALID_REQUEST");
    expect((await call("POST", "/api/queues/q/nack", { token: "nope" })).status).toBe(409);
    expect((await call("GET", "/api/queues/q/dlq/missing")).status).toBe(404);
  });
});
