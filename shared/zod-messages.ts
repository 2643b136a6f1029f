// Turns zod issues into one sentence that names the field, the way an operator reads it
// (`metrics.0.column is required (a string)`, `engine must be one of "auto", "duckdb", "polars"`),
// instead of zod's own text (`Invalid input: expected string, received undefined`). Used by every
// place that turns a zod error into a QuarryError: request and payload validation, the schedule
// request, the configuration, and so the CLI, which prints these messages as they are.
import type { z } from 'zod';

type Issue = z.core.$ZodIssue;

/** The field an issue is about, as a dotted path; an unknown key names the key itself. */
export function issueField(issue: Issue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path.push(issue.keys[0]!);
  return path.join('.');
}

const KIND: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  bigint: 'a whole number',
  date: 'a date',
  null: 'null',
};

const kind = (expected: string) => KIND[expected] ?? expected;

function received(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'number') return String(input);
  return kind(typeof input);
}

/** The problem, as the predicate of a sentence whose subject is the field. */
function predicate(issue: Issue, prefix: string): string {
  switch (issue.code) {
    case 'invalid_type':
      // Only with reportInput (see parseWith) can a missing value be told from a wrong one.
      if (!('input' in issue)) return `must be ${kind(issue.expected)}`;
      if (issue.input === undefined) return `is required (${kind(issue.expected)})`;
      return `must be ${kind(issue.expected)}, not ${received(issue.input)}`;
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'string')
        return n === 1 ? 'must not be empty' : `must be at least ${n} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set')
        return `must have at least ${n} item${n === 1 ? '' : 's'}`;
      return issue.inclusive === false ? `must be greater than ${n}` : `must be at least ${n}`;
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${n} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set')
        return `must have at most ${n} item${n === 1 ? '' : 's'}`;
      return issue.inclusive === false ? `must be less than ${n}` : `must be at most ${n}`;
    }
    case 'invalid_value':
      return `must be ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_format':
      if (issue.format === 'regex' && 'pattern' in issue) return `must match ${String(issue.pattern)}`;
      return `must be a valid ${issue.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    case 'unrecognized_keys':
      return `is not a known field${issue.keys.length > 1 ? ` (nor ${issue.keys.slice(1).join(', ')})` : ''}`;
    case 'invalid_union': {
      if ('options' in issue && Array.isArray(issue.options)) {
        return `must be one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
      }
      const branches = issue.errors.filter((b) => b.length > 0);
      // Every form wants a different type here: list the types.
      if (branches.length > 0 && branches.every((b) => b.length === 1 && b[0]!.code === 'invalid_type')) {
        if ('input' in issue && issue.input === undefined) return 'is required';
        const kinds = [...new Set(branches.map((b) => kind((b[0] as { expected: string }).expected)))];
        return kinds.length === 1
          ? `must be ${kinds[0]}`
          : `must be ${kinds.slice(0, -1).join(', ')} or ${kinds.at(-1)}`;
      }
      const forms = branches.map((b) => describe(b[0]!, prefix));
      return forms.length === 0
        ? 'matches none of its allowed forms'
        : `matches none of its forms: ${forms.join('; or ')}`;
    }
    default:
      return `: ${issue.message}`;
  }
}

function describe(issue: Issue, prefix: string): string {
  const field = [prefix, issueField(issue)].filter((p) => p !== '').join('.');
  const subject = field === '' ? 'the input' : field;
  const text = predicate(issue, field);
  return text.startsWith(':') ? `${subject}${text}` : `${subject} ${text}`;
}

/** One sentence naming the field: `limit must be a whole number, not a number`. */
export function describeIssue(issue: Issue): string {
  return describe(issue, '');
}

/** The first issue's sentence, and how many more there are. */
export function describeZodError(error: z.ZodError): { message: string; field: string } {
  const issue = error.issues[0]!;
  const more = error.issues.length - 1;
  return {
    message: `${describeIssue(issue)}${more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'})` : ''}`,
    field: issueField(issue),
  };
}

/** safeParse with the input reported in issues, so a missing value reads "is required". */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(input, { reportInput: true }) as z.ZodSafeParseResult<z.output<S>>;
}
