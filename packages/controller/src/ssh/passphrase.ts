import { UsageError } from '@gsync/core';
import type { AskPassphrase } from './identity.js';

/** A terminal to read from: process.stdin when it is a TTY. */
export interface PromptInput extends NodeJS.ReadableStream {
  isRaw?: boolean;
  setRawMode(mode: boolean): unknown;
}

/**
 * Reads one line typed on a terminal without echoing it (the terminal is put in raw mode, as
 * ssh does), with the prompt on `output`. Backspace and Ctrl-U edit; Ctrl-C cancels; Ctrl-D on
 * an empty line answers nothing.
 */
export function readHidden(input: PromptInput, output: NodeJS.WritableStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const wasRaw = input.isRaw ?? false;
    // Echo off before the prompt shows: an answer typed the moment it appears must not be echoed.
    input.setRawMode(true);
    output.write(prompt);
    let typed: string[] = [];
    const finish = (error?: Error) => {
      input.removeListener('data', onData);
      input.setRawMode(wasRaw);
      // Paused again, stdin no longer keeps the process alive.
      input.pause();
      output.write('\n');
      if (error) reject(error);
      else resolve(typed.join(''));
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\x03') return finish(new UsageError('cancelled at the passphrase prompt'));
        if (ch === '\x04') {
          if (typed.length === 0) return finish();
        } else if (ch === '\x7f' || ch === '\b') typed.pop();
        else if (ch === '\x15') typed = [];
        else if (ch >= ' ') typed.push(ch);
      }
    };
    input.on('data', onData);
    input.resume();
  });
}

/** One prompt at a time, and each key file asked for once per run however many nodes and hops use it. */
export function passphrasePrompt(input: PromptInput, output: NodeJS.WritableStream): AskPassphrase {
  const answers = new Map<string, Promise<string>>();
  let queue: Promise<unknown> = Promise.resolve();
  return (file) => {
    let answer = answers.get(file);
    if (!answer) {
      answer = queue.then(() => readHidden(input, output, `Enter passphrase for key '${file}': `));
      queue = answer.catch(() => undefined);
      answers.set(file, answer);
    }
    return answer;
  };
}
