/**
 * Ant-style subject DN patterns (`?` one character, `*` a run without ',', `**` any run) matched
 * in O(pattern × subject) time by simulating the pattern's automaton: no backtracking, so a
 * pattern such as `**a**a**a**X` cannot stall the event loop during a handshake.
 */

/** One pattern element: a literal character (lower-cased), or a wildcard. */
type Token = { kind: 'char'; ch: string } | { kind: 'one' } | { kind: 'star' } | { kind: 'any' };

const compiled = new Map<string, Token[]>();
const MAX_CACHED = 256;

/** Tokens of a pattern; blanks around ',' are ignored, as in the DN forms it is matched against. */
function tokens(pattern: string): Token[] {
  let out = compiled.get(pattern);
  if (out) return out;
  const normalised = pattern.replace(/\s*,\s*/g, ',');
  out = [];
  for (let i = 0; i < normalised.length; i++) {
    const ch = normalised[i] as string;
    if (ch === '*' && normalised[i + 1] === '*') {
      // Runs of `*` beyond two add nothing but states.
      while (normalised[i + 1] === '*') i++;
      out.push({ kind: 'any' });
    } else if (ch === '*') out.push({ kind: 'star' });
    else if (ch === '?') out.push({ kind: 'one' });
    else out.push({ kind: 'char', ch: ch.toLowerCase() });
  }
  if (compiled.size >= MAX_CACHED) compiled.clear();
  compiled.set(pattern, out);
  return out;
}

/** Add state `i` and every state reachable from it without consuming a character. */
function close(mark: Int32Array, stamp: number, list: number[], tks: Token[], i: number): void {
  while (i <= tks.length && mark[i] !== stamp) {
    mark[i] = stamp;
    list.push(i);
    const t = tks[i];
    if (t?.kind !== 'star' && t?.kind !== 'any') return;
    i++;
  }
}

/** True when the whole `subject` matches `pattern` (case-insensitive). */
export function subjectPatternMatches(pattern: string, subject: string): boolean {
  const tks = tokens(pattern);
  // mark[i] === stamp: state i is in the current set; one array, no allocation per character.
  const mark = new Int32Array(tks.length + 1);
  let stamp = 1;
  let list: number[] = [];
  close(mark, stamp, list, tks, 0);
  const text = subject.toLowerCase();
  for (let c = 0; c < text.length; c++) {
    const ch = text[c] as string;
    const next: number[] = [];
    stamp++;
    for (const i of list) {
      const t = tks[i];
      if (t === undefined) continue;
      if (t.kind === 'any' || (t.kind === 'star' && ch !== ',')) close(mark, stamp, next, tks, i);
      if (t.kind === 'one' || (t.kind === 'char' && t.ch === ch)) close(mark, stamp, next, tks, i + 1);
    }
    if (next.length === 0) return false;
    list = next;
  }
  return list.includes(tks.length);
}
