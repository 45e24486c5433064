import { readFileSync } from 'node:fs';
import { InvalidInputError } from '../errors.js';

/**
 * Read a context file: a JSON object of variables for {{context.x}} templates. A leading UTF-8
 * byte-order mark (Windows editors write one) is skipped, as JSON parsers elsewhere do.
 */
export function readContextFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${file}: cannot read file`, { cause, file, hint: 'check the path and its permissions' });
  }
  let data: unknown;
  try {
    data = JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: not valid JSON (${(cause as Error).message})`, { cause, file, hint: 'fix the JSON syntax' });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: the context must be a JSON object`, { file, hint: 'write the context as {"name": value, …}' });
  }
  return data as Record<string, unknown>;
}
