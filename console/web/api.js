// The incident API (ops crate, /api/…): bearer token on every request; the live stream is read
// with fetch() (EventSource cannot send an Authorization header) and parsed as server-sent events.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  async get(path, params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
    const url = query.toString() ? `${path}?${query}` : path;
    const response = await fetch(url, { headers: this.headers(), cache: "no-store" });
    return this.parse(response);
  }

  async post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    });
    return this.parse(response);
  }

  async parse(response) {
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const message = (body && (body.error || body.message)) || text || response.statusText;
      throw new ApiError(response.status, `${response.status}: ${message}`);
    }
    return body;
  }

  /**
   * Reads /api/stream until `signal` aborts, calling onEvent(type, data) for each event and
   * onState(connected) when the connection opens or drops. Reconnects with a growing pause
   * (0.5 s … 5 s); the caller re-reads what it may have missed when onState(true) fires again.
   */
  async stream(onEvent, onState, signal) {
    let pause = 500;
    while (!signal.aborted) {
      try {
        const response = await fetch("/api/stream", {
          headers: this.headers({ Accept: "text/event-stream" }),
          cache: "no-store",
          signal,
        });
        if (response.status === 401 || response.status === 403) {
          throw new ApiError(response.status, "stream refused");
        }
        if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
        onState(true);
        pause = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        // Events end at a blank line. A large event (the heat layer) comes in many chunks:
        // each chunk is searched from where the last search stopped (less the three characters
        // a blank line split across chunks may have left), not from the event's start.
        const blank = /\r?\n\r?\n/g;
        let buffer = "";
        let from = 0;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let start = 0;
          for (;;) {
            blank.lastIndex = Math.max(start, from);
            const m = blank.exec(buffer);
            if (!m) break;
            dispatch(buffer.slice(start, m.index), onEvent);
            start = m.index + m[0].length;
          }
          buffer = buffer.slice(start);
          from = Math.max(0, buffer.length - 3);
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError) {
          onState(false);
          throw e;
        }
      }
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 5000);
    }
  }
}

function dispatch(block, onEvent) {
  let type = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return;
  try {
    onEvent(type, JSON.parse(data.join("\n")));
  } catch (e) {
    console.warn("unreadable event", type, e);
  }
}
