import type { InvalidInputError } from '../errors.js';
import { FAILURE_CATEGORIES, type FailureCategory, type FailurePhase } from './categories.js';

/** Why a call failed: a stable category, the raw code, a message and what to do. */
export interface Failure {
  phase: FailurePhase;
  category: FailureCategory;
  /** The raw Node/OpenSSL code (e.g. CERT_HAS_EXPIRED) or ours (SVCNODE_*). */
  code: string;
  message: string;
  hint: string;
}

/** The one builder of Failures; the phase defaults to the category's. */
export function failureOf(category: FailureCategory, code: string, message: string, hint: string, phase: FailurePhase = FAILURE_CATEGORIES[category].phase): Failure {
  return { phase, category, code, message, hint };
}

/** The Failure of bad input (definition, profile, bundle, context). */
export function inputFailure(error: InvalidInputError, fallbackHint = 'fix the input and try again'): Failure {
  return failureOf('invalid_input', error.code, error.message, error.hint ?? fallbackHint, 'input');
}
