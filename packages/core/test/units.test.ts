import { describe, expect, it } from 'vitest';
import { humanBytes } from '@gsync/core';

describe('humanBytes', () => {
  it('reads as people read sizes, with binary units', () => {
    expect([0, 512, 1023, 1024, 3_500, 10 * 1024, 292 * 1024 ** 2, 1.5 * 1024 ** 3, 5 * 1024 ** 4].map(humanBytes)).toEqual([
      '0 B',
      '512 B',
      '1023 B',
      '1.0 KiB',
      '3.4 KiB',
      '10 KiB',
      '292 MiB',
      '1.5 GiB',
      '5.0 TiB',
    ]);
  });
});
