// The classic (seed) disk protocol: the request, the answer text as Python prints it, and parsing it back.
import { describe, expect, test } from '@jest/globals';
import { CLASSIC_ERROR, encodeClassicAnswer, isClassicRequest, parseClassicAnswer, pythonRound2 } from '../../src/protocol/disk-classic.js';

describe('classic protocol', () => {
  test.each([
    [251.9712, '251.97'],
    [252, '252.0'],
    [12.5, '12.5'],
    [0, '0.0'],
    [0.004, '0.0'],
    [78.689, '78.69'],
    [1024.1, '1024.1'],
  ])('pythonRound2(%p) prints like str(round(x, 2)): %p', (value, text) => {
    expect(pythonRound2(value)).toBe(text);
  });

  test('the answer text is byte for byte the seed server\'s', () => {
    const text = encodeClassicAnswer('vm', 270553174016n, 84490653696n).toString('utf8');
    expect(text).toBe('\nNome do Servidor: vm \nEspaço total: 251.97GB \nDisponivel: 78.69GB');
  });

  test('answers parse back, the error text does not', () => {
    expect(parseClassicAnswer('\nNome do Servidor: nas box \nEspaço total: 251.97GB \nDisponivel: 78.0GB')).toEqual({ serverName: 'nas box', totalGiB: 251.97, availableGiB: 78 });
    expect(parseClassicAnswer(CLASSIC_ERROR.toString('utf8'))).toBeUndefined();
    expect(parseClassicAnswer('')).toBeUndefined();
    expect(parseClassicAnswer('\nNome do Servidor: x \nEspaço total: GB \nDisponivel: 1GB')).toBeUndefined();
  });

  test('only exactly "y" is the classic request', () => {
    expect(isClassicRequest(Buffer.from('y'))).toBe(true);
    for (const other of ['', 'Y', 'y\n', 'yy', 'n']) expect(isClassicRequest(Buffer.from(other))).toBe(false);
    expect(CLASSIC_ERROR.toString('utf8')).toBe('Erro: Digite "y".');
  });
});
