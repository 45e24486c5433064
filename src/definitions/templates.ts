import { InvalidInputError } from '../errors.js';
import { unsupportedTemplates } from '../invoke/render.js';
import type { NodeDefinition } from './types.js';
import { pointerToken } from './validator.js';

/** Every templatable string of a request, with its JSON pointer. */
function* templatedStrings(request: NodeDefinition['request']): Generator<[pointer: string, text: string]> {
  yield ['/request/url', request.url];
  for (const [name, value] of Object.entries(request.headers ?? {})) yield [`/request/headers/${pointerToken(name)}`, value];
  for (const [name, value] of Object.entries(request.query ?? {})) if (typeof value === 'string') yield [`/request/query/${pointerToken(name)}`, value];
  const walk = function* (value: unknown, pointer: string): Generator<[string, string]> {
    if (typeof value === 'string') yield [pointer, value];
    else if (Array.isArray(value)) for (const [i, item] of value.entries()) yield* walk(item, `${pointer}/${i}`);
    else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* walk(v, `${pointer}/${pointerToken(k)}`);
  };
  yield* walk(request.body, '/request/body');
}

/**
 * Refuse a definition whose templates rendering would refuse (`{{contxt.a}}`, `{{context.a | upper}}`):
 * found when the file is loaded, not as invalid_input on every call.
 */
export function checkTemplates(node: NodeDefinition, file: string): void {
  const problems: { pointer: string; template: string }[] = [];
  for (const [pointer, text] of templatedStrings(node.request)) {
    for (const template of unsupportedTemplates(text)) problems.push({ pointer, template });
  }
  const first = problems[0];
  if (!first) return;
  const lines = problems.map((p) => `${p.pointer}: unsupported template "${p.template}"`);
  throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: invalid node definition:\n  ${lines.join('\n  ')}`, {
    file,
    field: first.pointer,
    hint: 'templates may only reference {{context.path.to.value}} (spelled "context", letters, digits, _ $ - between the dots): no filters, expressions or code',
  });
}
