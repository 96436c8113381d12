// The file server's public surface: start one, and the shapes it takes and reports.
export { startFileServer } from './server.js';
export { serverUrls } from './urls.js';
export { SERVE_DEFAULTS, type CloseResult, type FileServer, type Outcome, type ServeOptions, type TransferLog } from './types.js';
