/**
 * Masking of a secret that a peer's text may quote whole or cut short (an error_description, a
 * proxy's status line): shared by the Result scrubbing (invoke/) and the proxy messages (tls/).
 */

/**
 * `text` without any run of at least `piece` characters of `secret` (the whole secret when it is
 * shorter), each run replaced whole by `mask`.
 */
export function withoutRuns(text: string, secret: string, piece: number, mask: string): string {
  if (secret.length === 0) return text;
  if (secret.length < piece) return text.split(secret).join(mask);
  let out = '';
  let from = 0;
  for (let at = 0; at + piece <= text.length; ) {
    const inSecret = secret.indexOf(text.slice(at, at + piece));
    if (inSecret === -1) {
      at++;
      continue;
    }
    let end = at + piece;
    while (inSecret + (end - at) < secret.length && text[end] === secret[inSecret + (end - at)]) end++;
    out += `${text.slice(from, at)}${mask}`;
    from = end;
    at = end;
  }
  return from === 0 ? text : out + text.slice(from);
}
