// The site's own little account store: readers (an opaque id and an e-mail address), login
// sessions and one-time sign-in links, kept in memory and written to one JSON file in the data
// directory after every change. tollgate never sees e-mail addresses; it knows readers only by
// the id made here.
//
// Session ids and sign-in link tokens are random 256-bit values handed to the browser; the file
// keeps only their SHA-256, so a copy of it logs nobody in.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
const SIGNIN_LINK_TTL_MS = 15 * 60 * 1000;
const MAX_OUTBOX = 50;

export const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const randomToken = () => randomBytes(32).toString('base64url');

/** A plausible address, normalised (trimmed, lower case), or null. */
export function normaliseEmail(raw) {
  const email = String(raw ?? '').trim().toLowerCase();
  if (email.length < 3 || email.length > 254) return null;
  if (/[\s\p{Cc}<>"'`]/u.test(email)) return null;
  const at = email.indexOf('@');
  if (at < 1 || at !== email.lastIndexOf('@')) return null;
  const domain = email.slice(at + 1);
  if (!domain.includes('.') || domain.startsWith('.') || domain.endsWith('.') || domain.includes('..')) return null;
  return email;
}

export class Store {
  /** @param {string} dataDir */
  constructor(dataDir) {
    this.file = path.join(dataDir, 'readers.json');
    fs.mkdirSync(dataDir, { recursive: true });
    /** @type {{ readers: Record<string, {id: string, email: string, created_at: string}>,
     *   sessions: Record<string, {reader_id: string, expires_at: number}>,
     *   signin_links: Record<string, {reader_id: string, expires_at: number}> }} */
    this.data = { readers: {}, sessions: {}, signin_links: {} };
    if (fs.existsSync(this.file)) {
      const loaded = JSON.parse(fs.readFileSync(this.file, 'utf8'));
      this.data = { ...this.data, ...loaded };
    }
    /** Mails "sent" by the site, newest first; in memory only (see /dev/outbox). */
    this.outbox = [];
  }

  save() {
    const now = Date.now();
    for (const table of [this.data.sessions, this.data.signin_links]) {
      for (const [key, row] of Object.entries(table)) if (row.expires_at <= now) delete table[key];
    }
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.data, null, 1), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  readerByEmail(email) {
    return Object.values(this.data.readers).find((r) => r.email === email) ?? null;
  }

  reader(id) {
    return this.data.readers[id] ?? null;
  }

  /** A new reader with an opaque id (`r_` and 24 hex digits), which is what tollgate sees. */
  createReader(email) {
    const id = `r_${randomBytes(12).toString('hex')}`;
    const reader = { id, email, created_at: new Date().toISOString() };
    this.data.readers[id] = reader;
    this.save();
    return reader;
  }

  /** Starts a session; returns the secret for the cookie. */
  createSession(readerId) {
    const secret = randomToken();
    this.data.sessions[sha256(secret)] = { reader_id: readerId, expires_at: Date.now() + SESSION_TTL_MS };
    this.save();
    return { secret, maxAgeSec: SESSION_TTL_MS / 1000 };
  }

  /** The reader a session cookie belongs to, or null. */
  sessionReader(secret) {
    if (!secret) return null;
    const session = this.data.sessions[sha256(secret)];
    if (!session || session.expires_at <= Date.now()) return null;
    return this.reader(session.reader_id);
  }

  endSession(secret) {
    if (!secret) return;
    delete this.data.sessions[sha256(secret)];
    this.save();
  }

  /** A one-time sign-in link token for a reader, valid for 15 minutes. */
  createSigninLink(readerId) {
    const secret = randomToken();
    this.data.signin_links[sha256(secret)] = { reader_id: readerId, expires_at: Date.now() + SIGNIN_LINK_TTL_MS };
    this.save();
    return secret;
  }

  /** The reader a sign-in link token would sign in, without using it up; null if it is no good. */
  peekSigninLink(secret) {
    const link = secret ? this.data.signin_links[sha256(secret)] : undefined;
    return link && link.expires_at > Date.now() ? this.reader(link.reader_id) : null;
  }

  /** Uses up a sign-in link token: the reader it signs in, or null if it is unknown, used or expired. */
  consumeSigninLink(secret) {
    if (!secret) return null;
    const key = sha256(secret);
    const link = this.data.signin_links[key];
    if (!link) return null;
    delete this.data.signin_links[key];
    this.save();
    if (link.expires_at <= Date.now()) return null;
    return this.reader(link.reader_id);
  }

  /** Records a mail instead of sending it. */
  sendMail(mail) {
    this.outbox.unshift({ ...mail, sent_at: new Date().toISOString() });
    this.outbox.length = Math.min(this.outbox.length, MAX_OUTBOX);
  }
}
