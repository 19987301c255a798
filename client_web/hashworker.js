/** Hashes a File off the main thread, so a sender's data channel never waits for it. */
import { hashBlob } from './files.js';

onmessage = async ({ data }) => postMessage(await hashBlob(data));
