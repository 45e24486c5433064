import { InvalidInputError } from '../errors.js';
import { readJsonFile } from '../definitions/validator.js';

/** Read a context file: a JSON object of variables for {{context.x}} templates (a leading byte-order mark is skipped). */
export function readContextFile(file: string): Record<string, unknown> {
  const data = readJsonFile(file, 'SVCNODE_INVALID_DEFINITION');
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: the context must be a JSON object`, { file, hint: 'write the context as {"name": value, …}' });
  }
  return data as Record<string, unknown>;
}
