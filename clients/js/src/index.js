// @tollgate/paywall: what a publisher's site needs to gate articles with tollgate.

export { createVerifier, TokenRejectedError } from "./verifier.js";
export { canRead } from "./can-read.js";
export { createAccessClient, TollgateError, TollgateUnavailableError } from "./access.js";
export { clientAddress } from "./client-address.js";
