/** A value a vitest hook sets; reading it before the hook ran (outside the tests it prepares) is a test bug. */
export function hookValue<T>(value: T | undefined, fixture: string): T {
  if (value === undefined) throw new Error(`${fixture} used outside its tests`);
  return value;
}
