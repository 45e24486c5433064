import type { InvokeDeps } from '../../src/invoke/execute.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';

/** InvokeDeps over a fixed set of loaded test profiles; an unknown name is a test bug. */
export function profileDeps(profiles: ReadonlyMap<string, LoadedProfile>, agents: AgentPool): InvokeDeps {
  return {
    agents,
    profile: (name) => {
      const p = profiles.get(name);
      if (!p) throw new Error(`test profile ${name} missing`);
      return p;
    },
  };
}

/** Run `fn` with an AgentPool of its own (a fresh process, as far as connections and sessions go), destroyed after. */
export async function withAgents<T>(fn: (agents: AgentPool) => Promise<T>): Promise<T> {
  const agents = new AgentPool();
  try {
    return await fn(agents);
  } finally {
    agents.destroy();
  }
}
