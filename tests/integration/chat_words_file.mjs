// Banned words from chat.banned_words_file, reread on SIGHUP.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, Client, eq, sleep } from './chat_lib.mjs';

const words = '# banned words\nbadword\n坏蛋\n';

await run('chat_words_file', {
  files: { 'words.txt': words },
  chat: (dir) => `banned_words_file = ${join(dir, 'words.txt')}`,
}, async (d) => {
  await sleep(300);
  const a = await Client.connect(d.url());
  await a.hello('alice');
  eq((await a.request({ type: 'comment', text: '你這個壞蛋' })).code, 'forbidden', 'word from the file');
  writeFileSync(join(d.dir, 'words.txt'), words + 'newword\n');
  d.reload();
  await sleep(500);
  eq((await a.request({ type: 'comment', text: 'a NEWWORD now' })).code, 'forbidden', 'after reload');
  await a.close();
});

