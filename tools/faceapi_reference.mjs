// face-api's own runtime (its bundled tfjs, CPU backend) on raw inputs, for tools/convert_faceapi.py.
// usage: node faceapi_reference.mjs PACKAGE_DIR INPUT.bin N OUTPUT.bin
//   INPUT.bin: float32 [N, 112, 112, 3] RGB 0-255; OUTPUT.bin: float32 [N, 7] softmax probabilities
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg, inputPath, nStr, outPath] = process.argv.slice(2);
// The browser bundle carries tfjs; its node platform needs node's util, which the bundle stubs
// out.  Hide node while it loads, then give tfjs a platform made of node's web APIs.
const versions = process.versions;
Object.defineProperty(process, 'versions', { value: { ...versions, node: undefined }, configurable: true, writable: true });
const faceapi = await import(pathToFileURL(path.join(pkg, 'dist', 'face-api.esm.js')).href);
Object.defineProperty(process, 'versions', { value: versions, configurable: true, writable: true });
const tf = faceapi.tf;
tf.env().setPlatform('node-web-apis', {
  fetch: (u, o) => fetch(u, o),
  now: () => performance.now(),
  encode: (s) => new TextEncoder().encode(s),
  decode: (b, e) => new TextDecoder(e).decode(b),
  isTypedArray: (a) => ArrayBuffer.isView(a) && !(a instanceof DataView),
  setTimeoutCustom: (f, t) => setTimeout(f, t),
});
await tf.setBackend('cpu');
await tf.ready();
const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'model', 'face_expression_model-weights_manifest.json')));
const bin = fs.readFileSync(path.join(pkg, 'model', 'face_expression_model.bin'));
const weightMap = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
const net = faceapi.nets.faceExpressionNet;
net.loadFromWeightMap(weightMap);
const n = Number(nStr);
const raw = fs.readFileSync(inputPath);
const x = tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, n * 112 * 112 * 3), [n, 112, 112, 3]);
const netInput = new faceapi.NetInput(tf.unstack(x));  // face-api's batch input (pads to square, resizes to 112)
const probs = net.forwardInput(netInput);  // FaceExpressionNet.forwardInput = softmax(runNet(input))
fs.writeFileSync(outPath, Buffer.from(new Float32Array(await probs.data()).buffer));
console.log(`face-api ${faceapi.version ?? ''} tfjs ${tf.version_core} backend ${tf.getBackend()}: ${n} inputs`);
