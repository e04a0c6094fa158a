/** How each `cellar` subcommand is declared: its one-line errors and its examples in `--help`. */
import type { Command } from "commander";

/**
 * Adds subcommand `spec` (commander's `"name <arg> [arg]"`) to `parent`, with `examples` shown
 * after its options in `--help`. Commander's own refusals (a bad flag, a missing argument)
 * print as `cellar: …`, one line, and exit with status 2 through the program's exit override.
 *
 * @example
 * subcommand(program, "get <key>", "print one entry", ["cellar get users/ada --db data/app.db"]);
 */
export function subcommand(
  parent: Command,
  spec: string,
  description: string,
  examples: readonly string[],
): Command {
  const command = parent.command(spec).description(description);
  command.configureOutput({
    outputError: (text, write) => write(text.replace(/^error: /, "cellar: ")),
  });
  if (examples.length > 0) {
    command.addHelpText("after", `\nExamples:\n${examples.map((e) => `  $ ${e}`).join("\n")}\n`);
  }
  return command;
}
