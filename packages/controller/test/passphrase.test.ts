import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { passphrasePrompt, readHidden, type PromptInput } from '../src/ssh/passphrase.js';

/** A stand-in terminal: what is typed goes in, what is written comes out, raw mode is recorded. */
function terminal() {
  const input = Object.assign(new PassThrough(), {
    isRaw: false,
    modes: [] as boolean[],
    setRawMode(mode: boolean) {
      this.isRaw = mode;
      this.modes.push(mode);
      return this;
    },
  });
  const output = new PassThrough();
  let shown = '';
  // Whether echo was off when each piece was shown.
  const rawAtWrite: boolean[] = [];
  const write = output.write.bind(output);
  output.write = ((chunk: string) => {
    rawAtWrite.push(input.isRaw);
    shown += chunk;
    return write(chunk);
  }) as typeof output.write;
  return { input: input as typeof input & PromptInput, output, shown: () => shown, rawAtWrite };
}

describe('readHidden', () => {
  it('reads a line in raw mode, shows only the prompt, and puts the terminal back', async () => {
    const t = terminal();
    const answer = readHidden(t.input, t.output, 'Passphrase: ');
    t.input.write('s3cret\r');
    expect(await answer).toBe('s3cret');
    expect(t.shown()).toBe('Passphrase: \n');
    // Echo is off before the prompt shows, so an answer typed at once is not echoed either.
    expect(t.rawAtWrite[0]).toBe(true);
    expect(t.input.modes).toEqual([true, false]);
    expect(t.input.isPaused()).toBe(true);
  });

  it('backspace and Ctrl-U edit; the answer may come in pieces', async () => {
    const t = terminal();
    const answer = readHidden(t.input, t.output, '> ');
    t.input.write('wrong\x15ab');
    t.input.write('x\x7fc\n');
    expect(await answer).toBe('abc');
  });

  it('Ctrl-C cancels; Ctrl-D on an empty line answers nothing', async () => {
    const t = terminal();
    const cancelled = readHidden(t.input, t.output, '> ');
    t.input.write('ab\x03');
    await expect(cancelled).rejects.toThrow(/cancelled at the passphrase prompt/);
    expect(t.input.isRaw).toBe(false);
    const empty = readHidden(t.input, t.output, '> ');
    t.input.write('\x04');
    expect(await empty).toBe('');
  });
});

describe('passphrasePrompt', () => {
  it('asks once per key file, one prompt at a time', async () => {
    const t = terminal();
    const ask = passphrasePrompt(t.input, t.output);
    const [a1, b, a2] = [ask('/k/a'), ask('/k/b'), ask('/k/a')];
    // Only the first prompt is up until it is answered.
    await new Promise((r) => setImmediate(r));
    expect(t.shown()).toBe("Enter passphrase for key '/k/a': ");
    t.input.write('one\r');
    expect(await a1).toBe('one');
    await new Promise((r) => setImmediate(r));
    t.input.write('two\r');
    expect(await b).toBe('two');
    expect(await a2).toBe('one');
    expect(t.shown().match(/Enter passphrase/g)).toHaveLength(2);
  });
});
