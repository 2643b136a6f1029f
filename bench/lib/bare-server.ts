// A bare node:http server that answers every request with the bytes of one file: the floor
// the API's GET /v1/results/:key is compared with. An optional second argument names a JSON file
// of response headers to send (the API's own, captured by the bench), so both answer the same
// bytes with the same headers; without it, a JSON content type.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const bytes = readFileSync(process.argv[2]!);
const headersFile = process.argv[3];
const headers: Record<string, string | number> =
  headersFile === undefined
    ? { 'content-type': 'application/json; charset=utf-8' }
    : (JSON.parse(readFileSync(headersFile, 'utf8')) as Record<string, string>);
headers['content-length'] = bytes.length;
const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(bytes);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
