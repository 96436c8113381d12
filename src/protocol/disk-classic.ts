// The seed programs' classic disk protocol (docs/protocol.md section 3): "y" in, a text answer out.

/** The whole classic request: the single byte "y". */
export const CLASSIC_REQUEST = Buffer.from('y', 'utf8');

/** The seed server's reply to anything other than exactly "y". */
export const CLASSIC_ERROR = Buffer.from('Erro: Digite "y".', 'utf8');

const GIB = 1024 ** 3;

/**
 * A number as the seed's Python prints `round(x, 2)`: at most two decimals, trailing zeros dropped,
 * but always at least one decimal ("252.0", "12.5", "0.13").
 */
export function pythonRound2(value: number): string {
  const s = String(Number(value.toFixed(2)));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** The seed server's answer text for a host name and total/available bytes. */
export function encodeClassicAnswer(serverName: string, totalBytes: bigint | number, availableBytes: bigint | number): Buffer {
  const total = pythonRound2(Number(totalBytes) / GIB);
  const avail = pythonRound2(Number(availableBytes) / GIB);
  return Buffer.from(`\nNome do Servidor: ${serverName} \nEspaço total: ${total}GB \nDisponivel: ${avail}GB`, 'utf8');
}

export interface ClassicAnswer {
  serverName: string;
  /** GiB as the server printed them (two decimals at most). */
  totalGiB: number;
  availableGiB: number;
}

const ANSWER_RE = /^\s*Nome do Servidor: (.*?) ?\r?\n\s*Espa(?:ç|c)o total: ([0-9.]+(?:e[+-]?\d+)?) ?GB ?\r?\n\s*Disponivel: ([0-9.]+(?:e[+-]?\d+)?) ?GB\s*$/su;

/** Parse a classic answer text; undefined when the text has another shape (e.g. the error reply). */
export function parseClassicAnswer(text: string): ClassicAnswer | undefined {
  const m = ANSWER_RE.exec(text);
  if (!m) return undefined;
  const totalGiB = Number(m[2]);
  const availableGiB = Number(m[3]);
  if (!Number.isFinite(totalGiB) || !Number.isFinite(availableGiB)) return undefined;
  return { serverName: m[1]!, totalGiB, availableGiB };
}

/** True for exactly the classic request. */
export function isClassicRequest(buf: Buffer): boolean {
  return buf.length === 1 && buf[0] === 0x79;
}
