import { InvalidInputError } from '../errors.js';
import { checkContextDepth, readJsonFile } from '../definitions/validator.js';

/** Read a context file: a JSON object of variables for {{context.x}} templates (a leading byte-order mark is skipped), nested no deeper than a job's may be. */
export function readContextFile(file: string): Record<string, unknown> {
  const data = readJsonFile(file, 'SVCNODE_INVALID_DEFINITION');
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: the context must be a JSON object`, { file, hint: 'write the context as {"name": value, …}' });
  }
  // The worker refuses a context nested deeper than it takes: dry-run refuses it too, as enqueue does.
  checkContextDepth(data, file);
  return data as Record<string, unknown>;
}
