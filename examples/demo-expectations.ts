/**
 * What each demo invocation must give, and the lines that say whether it did: a failure is only
 * "as expected" when its category is the one the step provokes.
 */
import type { FailureCategory } from '../src/failures/categories.js';

/** OK (null) or the failure category a step provokes. */
export type Expected = FailureCategory | null;

/** What is judged of a Result: its failure category, if any. */
type Outcome = { failure: { category: FailureCategory } | null };

const named = (category: Expected): string => category ?? 'OK';
const categoryOf = (result: Outcome): Expected => result.failure?.category ?? null;

/** The line printed under a Result that is not what its step expects; undefined when it is. */
export function unexpectedLine(result: Outcome, expected: Expected): string | undefined {
  const got = categoryOf(result);
  return got === expected ? undefined : `UNEXPECTED  expected ${named(expected)}, got ${named(got)}`;
}

function tally(categories: readonly Expected[], how = ''): string {
  const failed = categories.filter((c): c is FailureCategory => c !== null);
  return `${categories.length - failed.length} ok, ${failed.length} failed${how}${failed.length > 0 ? ` (${failed.join(', ')})` : ''}`;
}

/** The demo's closing line; `asExpected` is false as soon as one step gave another outcome. */
export function closingLine(results: readonly Outcome[], expected: readonly Expected[]): { line: string; asExpected: boolean } {
  const got = results.map(categoryOf);
  const asExpected = got.length === expected.length && got.every((c, i) => c === expected[i]);
  if (asExpected) return { line: `demo finished: ${tally(got, ' as expected')}`, asExpected };
  return { line: `demo finished: UNEXPECTED: ${tally(got)}; expected ${tally(expected)}`, asExpected };
}
