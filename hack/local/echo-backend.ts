// The backend behind test Routes: answers every request with what it received
// (method, host, path and headers), so a test can see which identity headers
// the gateway passed on. Started inside a network namespace by
// netns-backend.ts; BACKEND_NAME tells several backends apart.
import http from 'node:http';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '0.0.0.0';
const name = process.env.BACKEND_NAME ?? 'echo';

const server = http.createServer((req, res) => {
  // Drain the body so keep-alive connections stay usable.
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ backend: name, method: req.method, host: req.headers.host, path: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-backend': name });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => process.stdout.write(`${JSON.stringify({ msg: 'listening', host, port, name })}\n`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
