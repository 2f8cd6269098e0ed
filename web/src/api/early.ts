// Responses started before the app finished loading (see src/boot.ts), taken once by the
// client when it asks for the same URL shortly after.

const MAX_AGE_MS = 10_000;
const pending = new Map<string, { at: number; response: Promise<Response> }>();

export function putEarly(url: string, response: Promise<Response>): void {
  // A rejected early fetch is handled where it is taken; never report it as unhandled.
  response.catch(() => {});
  pending.set(url, { at: Date.now(), response });
}

export function takeEarly(url: string): Promise<Response> | undefined {
  const hit = pending.get(url);
  if (!hit) return undefined;
  pending.delete(url);
  return Date.now() - hit.at <= MAX_AGE_MS ? hit.response : undefined;
}
