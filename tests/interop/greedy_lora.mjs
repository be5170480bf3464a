// greedy_lora.mjs: greedy decoding with llama.cpp (node-llama-cpp's prebuilt CPU library) with LoRA
// adapters attached to the context, the reference that tests/test_interop_lora.sh holds
// `snipmeta generate --lora A.gguf:SCALE --temp 0 --ids` against.
//
// usage: node greedy_lora.mjs MODEL.gguf PROMPT N_GEN THREADS ADAPTER.gguf[:SCALE]...
// Prints two lines: the prompt's token ids (BOS first when the vocabulary asks for it), then the
// N_GEN greedily chosen ids (fewer at an end-of-generation token or BOS, which is not printed).
// As greedy.mjs: nothing is built or downloaded, the KV cache is F32 and flash attention is off.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, prompt, nGenArg, threadsArg, ...loraArgs] = process.argv.slice(2);
if (!modelPath || prompt === undefined || !nGenArg || !threadsArg || loraArgs.length === 0) {
    console.error("usage: node greedy_lora.mjs MODEL.gguf PROMPT N_GEN THREADS ADAPTER.gguf[:SCALE]...");
    process.exit(2);
}
const nGen = Number(nGenArg);
const threads = Number(threadsArg);
const adapters = loraArgs.map((a) => {
    const m = /^(.*):([-+0-9.eE]+)$/.exec(a);
    return m ? { filePath: m[1], scale: Number(m[2]) } : { filePath: a, scale: 1 };
});

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
    lora: { adapters },
});
const sequence = context.getSequence();

const generated = [];
if (nGen > 0) {
    for await (const token of sequence.evaluate(promptIds, { temperature: 0 })) {
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
