import type { InvokeDeps } from '../../src/invoke/execute.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import type { AgentPool } from '../../src/tls/agents.js';

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
