/** One line for logs and `last_error`: the error's name and message, or the thrown value. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
