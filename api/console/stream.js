// Follows the live log (GET /v1/stream) for the console and the dashboard. EventSource cannot send
// an Authorization header, so the stream is read with fetch; after a drop it reconnects, resuming
// after the last event id. Returns the AbortController that stops it.
function followLog(key, onEnvelope) {
  const controller = new AbortController();
  (async () => {
    let lastId = "";
    for (;;) {
      try {
        const headers = { "Authorization": "Bearer " + key };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch("/v1/stream", { headers, signal: controller.signal });
        if (!response.ok) throw new Error("stream: " + response.status);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields = {};
            for (const line of block.split("\n")) {
              const colon = line.indexOf(":");
              if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
            }
            if (fields.id) lastId = fields.id;
            if (fields.data && fields.event !== "overflow") onEnvelope(JSON.parse(fields.data));
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return controller;
}
