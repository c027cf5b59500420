// Public library surface: re-exports only. Other Node services embed ztb-enforce through this
// module: compile a policy, evaluate packets (reference evaluator or native engine), build tenant
// networks, and load the policy into nftables or pf.
export * from './errors.js';
export type * from './policy/ir.js';
export type * from './engine/packet.js';

// Policy: pf.conf and TOML front ends, renderer.
export { PolicyError, DiagnosticSink, formatDiagnostic, type Diagnostic } from './policy/errors.js';
export { compilePf, LIMITS as POLICY_LIMITS, type PfUnit, type CompileInput } from './policy/compile.js';
export { loadPolicyFile, compilePolicyText, formatFromPath, type PolicyFormat } from './policy/load.js';
export { renderRule, renderPfConf, renderAnchor } from './policy/render.js';
export { compileTomlPolicy, loadTomlPolicy, type LoadedTomlPolicy } from './policy/toml.js';

// Engine: the reference evaluator (oracle), packet lines, native engine and classifier.
export {
  ReferenceEvaluator,
  PacketError,
  type EvaluatorOptions,
  type RuleCounters,
  type StateView,
} from './engine/reference.js';
export { DEFAULT_TIMEOUTS } from './engine/state-table.js';
export { parsePacketLine, formatPacketLine, PacketLineError } from './engine/packet-line.js';
export { loadNative, NativeError } from './engine/native.js';
export { NativeEngine, allocOutputs, type NativeEngineOptions, type BatchOutputs } from './engine/engine.js';
export { NativeClassifier, parseClassbenchRules, parseClassbenchTrace } from './engine/classbench.js';

// Tenant networks (Linux, rtnetlink).
export {
  applyTenants,
  verifyTenants,
  teardownTenants,
  type ApplyOptions,
  type ApplyReport,
  type VerifyReport,
  type TeardownReport,
} from './net/reconcile.js';
export { buildTopology, tapNameProblem } from './net/topology.js';
export { NetlinkError, TopologyError } from './net/errors.js';

// Kernel backends.
export { applyNft, checkNft, removeNft, readCounters as readNftCounters } from './backends/nft/apply.js';
export { applyPf, type ApplyPfOptions } from './backends/pf/apply.js';
export { BackendError } from './backends/pf/errors.js';
export { renderPfText } from './backends/pf/text.js';
export { planLoad, executePlan, readCounters as readPfCounters, type IoctlDevice } from './backends/pf/plan.js';
export { SimulatedPfDevice } from './backends/pf/sim-device.js';
