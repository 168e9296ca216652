// JSON-RPC messages in an MCP Streamable HTTP response body, which is
// application/json (one message or a batch) or text/event-stream (one
// message per event's data lines). Shared by the Node tests.

export function rpcMessages(contentType, text) {
  if (!text) return [];
  if ((contentType ?? '').startsWith('text/event-stream')) {
    const messages = [];
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (data) {
        try {
          messages.push(JSON.parse(data));
        } catch {
          // Priming events may carry no JSON.
        }
      }
    }
    return messages;
  }
  try {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return [];
  }
}
