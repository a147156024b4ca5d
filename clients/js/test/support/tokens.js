// Taking tokens apart and putting forged ones together, and counting HTTP calls.

/** A compact JWT's header, payload and (still encoded) signature. */
export function parts(token) {
  const [header, payload, signature] = token.split(".");
  return { header: decode(header), payload: decode(payload), signature };
}

/** A compact JWT from a header, a payload and an encoded signature, which is not checked. */
export function assemble(header, payload, signature) {
  return `${encode(header)}.${encode(payload)}.${signature}`;
}

/** A fetch that records every URL it is asked for, in `calls`. */
export function countingFetch() {
  const calls = [];
  const counted = (input, init) => {
    calls.push(new URL(input instanceof Request ? input.url : input).pathname);
    return fetch(input, init);
  };
  counted.calls = calls;
  return counted;
}

const decode = (part) => JSON.parse(Buffer.from(part, "base64url").toString());
const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
