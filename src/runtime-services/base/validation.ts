// Edge validation shared by the services: what reaches PostgreSQL must fit
// its types (bigint range, no NUL in text), so a hostile value is a 400
// naming the field instead of a driver error.
import type { FastifyReply } from 'fastify';
import { z } from 'zod';

/** Largest offset/seq a client may send: JS numbers stay exact, and it is below bigint's max. */
export const MAX_SAFE_OFFSET = Number.MAX_SAFE_INTEGER;
const BIGINT_MAX = 9_223_372_036_854_775_807n;

/** PostgreSQL text cannot hold NUL; other C0 controls have no place in identifiers. */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** An identifier-like string: printable, bounded. */
export const plainText = (max: number) =>
  z.string().min(1).max(max).refine((s) => !CONTROL.test(s), 'must not contain control characters');

/** Free text (messages): newlines and tabs are fine, NUL is not. */
export const freeText = (max?: number) => {
  const base = max === undefined ? z.string().min(1) : z.string().min(1).max(max);
  return base.refine((s) => !s.includes('\u0000'), 'must not contain NUL characters');
};

/** A decimal bigint given as a string (cursors), within PostgreSQL's bigint. */
export const bigintString = (what: string) =>
  z
    .string()
    .regex(/^[0-9]{1,19}$/, `${what} must be a decimal number`)
    // zod runs refinements even after a failed regex: test the shape again
    // before BigInt, which throws on anything but digits.
    .refine((s) => !/^[0-9]{1,19}$/.test(s) || BigInt(s) <= BIGINT_MAX, `${what} is out of range`);

/** `field: message` of the first issue, and the field itself, for a 400 body or a socket error frame. */
export function firstIssue(err: z.ZodError): { field: string; message: string } {
  const issue = err.issues[0];
  const field = issue?.path.join('.') || 'body';
  return { field, message: `${field}: ${issue?.message ?? 'invalid'}` };
}

export function badRequest(reply: FastifyReply, err: z.ZodError) {
  const { field, message } = firstIssue(err);
  return reply.code(400).send({ error: 'bad_request', field, message });
}
