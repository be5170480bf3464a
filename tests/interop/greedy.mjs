// greedy.mjs: greedy decoding with llama.cpp (through node-llama-cpp's prebuilt CPU library), with
// optional LoRA adapters attached to the context: the reference that the interop tests
// (tests/test_interop_*.sh) hold `snipmeta generate [--lora A.gguf:SCALE]... --temp 0 --ids` against.
//
// usage: node greedy.mjs MODEL.gguf PROMPT N_GEN [THREADS] [--gaps] [--lora ADAPTER.gguf[:SCALE]]...
// Prints two lines on stdout: the prompt's token ids (BOS first when the vocabulary asks for it,
// as snipmeta's tokenizer does), then the N_GEN greedily chosen ids (fewer when an end-of-generation
// token or BOS comes first; like `snipmeta generate`, it stops there and does not print that token). With --gaps, stderr gets the top-1 minus top-2 logit gap of
// each step, which tells a real divergence from a near-tie.
//
// Nothing is built or downloaded: only the prebuilt CPU binary that `npm ci` installed is used.
// The KV cache is F32 and flash attention is off, so that llama.cpp's arithmetic is as close to
// snipmeta's (f32 cache, plain attention) as its graph allows.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const positional = [];
const adapters = [];
let gaps = false;
for (let args = process.argv.slice(2), i = 0; i < args.length; i++) {
    if (args[i] === "--gaps") gaps = true;
    else if (args[i] === "--lora" && i + 1 < args.length) {
        const m = /^(.*):([-+0-9.eE]+)$/.exec(args[++i]);
        adapters.push(m ? { filePath: m[1], scale: Number(m[2]) } : { filePath: args[i], scale: 1 });
    } else positional.push(args[i]);
}
const [modelPath, prompt, nGenArg, threadsArg] = positional;
if (!modelPath || prompt === undefined || !nGenArg) {
    console.error("usage: node greedy.mjs MODEL.gguf PROMPT N_GEN [THREADS] [--gaps] [--lora ADAPTER.gguf[:SCALE]]...");
    process.exit(2);
}
const nGen = Number(nGenArg);
const threads = Number(threadsArg ?? 2);

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: threads,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });

const promptIds = [];
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) promptIds.push(model.tokens.bos);
promptIds.push(...model.tokenize(prompt, false));

const context = await model.createContext({
    contextSize: Math.max(256, promptIds.length + nGen + 8),
    batchSize: 512,
    sequences: 1,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    ...(adapters.length > 0 ? { lora: { adapters } } : {}),
});
const sequence = context.getSequence();

const generated = [];
if (nGen > 0) {
    const steps = gaps
        ? sequence.evaluateWithMetadata(promptIds, { probabilities: true }, { temperature: 0 })
        : sequence.evaluate(promptIds, { temperature: 0 });
    for await (const step of steps) {
        const token = gaps ? step.token : step;
        if (gaps) {
            const [p1, p2] = [...step.probabilities.values()].sort((a, b) => b - a);
            console.error(`step ${generated.length}: token ${token} gap ${Math.log(p1 / p2).toFixed(5)}`);
        }
        if (model.isEogToken(token) || token === model.tokens.bos) break;
        generated.push(token);
        if (generated.length >= nGen) break;
    }
}

console.log(promptIds.join(" "));
console.log(generated.join(" "));

await context.dispose();
await model.dispose();
await llama.dispose();
