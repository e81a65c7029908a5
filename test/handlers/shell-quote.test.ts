import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { quoteShellWord } from '../../src/handlers/shell-quote.js';

describe('quoteShellWord', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(quoteShellWord('abc-1.txt')).toBe('abc-1.txt');
    expect(quoteShellWord('')).toBe("''");
    expect(quoteShellWord("it's")).toBe(`'it'\\''s'`);
  });

  it('reaches /bin/sh as exactly one argument, whatever it holds', () => {
    const hostile = fc.stringMatching(/^[\s\S]{0,40}$/).filter((s) => !s.includes('\0'));
    const words = fc.sample(hostile, { numRuns: 60, seed: 7 });
    words.push('$(touch /tmp/weft-canary)', '`id`', 'a; rm -rf /', "'; echo x '", '*', 'a\nb', '$HOME');
    // One sh process checks all words: printf prints each argument between markers.
    const script = `printf '<%s>' ${words.map(quoteShellWord).join(' ')}`;
    const out = execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
    expect(out).toBe(words.map((w) => `<${w}>`).join(''));
  });
});
