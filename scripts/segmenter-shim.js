// Build-time shim: string-width (used by yargs' help layout) builds an Intl.Segmenter when it is
// imported, three copies of it, and each costs ~12 ms of ICU start-up. This defers the real one until
// a string that needs it appears; printable ASCII, one grapheme per character, is answered directly.
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function* asciiGraphemes(input) {
  for (let index = 0; index < input.length; index += 1) yield { segment: input[index], index, input };
}

export class LazySegmenter {
  #args;
  #real;

  constructor(...args) {
    this.#args = args;
  }

  #segmenter() {
    this.#real ??= new globalThis.Intl.Segmenter(...this.#args);
    return this.#real;
  }

  segment(value) {
    const input = String(value);
    const granularity = this.#args[1]?.granularity ?? 'grapheme';
    if (granularity !== 'grapheme' || !PRINTABLE_ASCII.test(input)) return this.#segmenter().segment(input);
    return { [Symbol.iterator]: () => asciiGraphemes(input), containing: (i) => this.#segmenter().segment(input).containing(i) };
  }

  resolvedOptions() {
    return this.#segmenter().resolvedOptions();
  }

  static supportedLocalesOf(...args) {
    return globalThis.Intl.Segmenter.supportedLocalesOf(...args);
  }
}
