import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Calls `onLine` with each complete line a child's stream writes, without its newline. A pipe
 * hands over chunks that may end mid-line (or mid-character), so a reader that parses each chunk
 * as a whole sees half a JSON line under load; this one holds the tail back until its newline
 * comes. Returns a function that stops listening.
 */
export function onLines(stream: Readable, onLine: (line: string) => void): () => void {
  const decoder = new StringDecoder('utf8');
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += decoder.write(chunk);
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) onLine(line);
  };
  stream.on('data', onData);
  return () => stream.off('data', onData);
}
