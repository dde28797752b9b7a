import { readFile } from 'node:fs/promises';
import ssh2, { type ParsedKey } from 'ssh2';
import { SshError } from '@gsync/core';
import type { SshTarget } from './resolve.js';

const { utils } = ssh2;

/** Asks for the passphrase of an encrypted key file: present only when there is a terminal to ask on. */
export type AskPassphrase = (file: string) => Promise<string>;

export interface Identities {
  keys: (Buffer | ParsedKey)[];
  /** Encrypted files left to the agent: worth naming when the server refuses every key. */
  encrypted: string[];
}

/**
 * The private keys to offer. The node's own identity_file must exist; a file the ssh config
 * lists (or one of ssh's defaults) that does not is skipped, as ssh skips it. An encrypted key is
 * left to the agent when one runs; with no agent and no unencrypted key, its passphrase is asked
 * before connecting, so typing it never races the handshake timeout.
 */
export async function loadIdentities(target: SshTarget, node: string, prefix: string, ask: AskPassphrase | undefined): Promise<Identities> {
  const keys: (Buffer | ParsedKey)[] = [];
  const encrypted: { file: string; data: Buffer }[] = [];
  const missing: string[] = [];
  const unreadable: string[] = [];
  for (const file of target.identityFiles) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SshError(node, 'auth', `${prefix}cannot read identity file ${file}: ${(error as Error).message}`);
      }
      if (target.identityFixed) {
        throw new SshError(node, 'auth', `${prefix}identity file ${file} does not exist`, { hint: 'fix identity_file for the node in nodes.json' });
      }
      missing.push(file);
      continue;
    }
    const parsed = utils.parseKey(data);
    if (!(parsed instanceof Error)) keys.push(data);
    else if (/no passphrase given/.test(parsed.message)) encrypted.push({ file, data });
    else unreadable.push(file);
  }
  if (keys.length > 0 || target.agentSocket) return { keys, encrypted: encrypted.map((e) => e.file) };

  if (ask) {
    for (const { file, data } of encrypted) {
      const passphrase = await ask(file);
      // An empty answer passes the key over, as at ssh's own prompt.
      if (passphrase === '') continue;
      const parsed = utils.parseKey(data, passphrase);
      if (parsed instanceof Error) throw new SshError(node, 'auth', `${prefix}wrong passphrase for identity file ${file}`);
      keys.push(parsed);
    }
    if (keys.length > 0) return { keys, encrypted: [] };
  }
  throw noIdentity(node, prefix, { encrypted: encrypted.map((e) => e.file), missing, unreadable, asked: ask !== undefined });
}

function noIdentity(node: string, prefix: string, why: { encrypted: string[]; missing: string[]; unreadable: string[]; asked: boolean }): SshError {
  const { encrypted, missing, unreadable, asked } = why;
  const first = encrypted[0];
  if (first !== undefined) {
    const message = asked
      ? `no usable identity: no passphrase was given for ${encrypted.join(', ')}, and no ssh-agent is running`
      : `no usable identity: identity file ${first} is encrypted, no ssh-agent is running, and there is no terminal to ask for its passphrase`;
    return new SshError(node, 'auth', `${prefix}${message}`, { hint: `add the key to ssh-agent (ssh-add ${first}), or run gsync-ctl on a terminal` });
  }
  const reasons = [
    ...(missing.length === 1 ? [`identity file ${missing[0]} does not exist`] : missing.length > 1 ? [`none of ${missing.join(', ')} exists`] : []),
    ...unreadable.map((file) => `${file} is not a private key gsync can read`),
  ];
  return new SshError(node, 'auth', `${prefix}no usable identity: ${reasons.join('; ') || 'no identity file is set'}, and no ssh-agent is running`, {
    hint: 'set identity_file for the node, or start ssh-agent and add the key',
  });
}
