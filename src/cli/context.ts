import { InvalidInputError } from '../errors.js';
import { checkContext, readJsonFile } from '../definitions/validator.js';

/** Read a context file: a JSON object of variables for {{context.x}} templates (a leading byte-order mark is skipped), checked as a job's context is (depth, numbers JSON would round). */
export function readContextFile(file: string): Record<string, unknown> {
  const data = readJsonFile(file, 'SVCNODE_INVALID_DEFINITION');
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: the context must be a JSON object`, { file, hint: 'write the context as {"name": value, …}' });
  }
  // The worker refuses a context too deep, or with a number beyond 2^53: dry-run refuses it too, as enqueue does.
  checkContext(data, file);
  return data as Record<string, unknown>;
}
