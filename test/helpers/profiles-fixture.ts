import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { loadProfile, type LoadProfileOptions } from '../../src/definitions/profiles.js';
import type { ProfileDocument } from '../../src/definitions/types.js';
import type { InvokeDeps } from '../../src/invoke/execute.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { profileDeps } from './deps.js';
import { hookValue } from './hook-value.js';
import { createTestPki, type TestPki } from './pki.js';
import type { TestServer } from './servers.js';

export interface ProfilesFixture {
  /** Set in beforeAll, before the test file's own beforeAll runs. */
  readonly pki: TestPki;
  /** The profiles loaded with load(), by name. */
  readonly profiles: Map<string, LoadedProfile>;
  /** A new AgentPool per test, destroyed after it. */
  readonly agents: AgentPool;
  /** InvokeDeps over `profiles` and this test's `agents`. */
  readonly deps: InvokeDeps;
  /** Writes profile `name` with pki.profile() and loads it into `profiles`. */
  load(name: string, doc?: ProfileDocument, options?: LoadProfileOptions): Promise<void>;
  /** Closes `s` in afterAll. */
  track<T extends TestServer>(s: T): T;
}

/**
 * Registers the hooks of invoke() tests over several named profiles: a test PKI for the file,
 * a fresh AgentPool per test; afterAll closes the tracked servers and the PKI.
 */
export function useProfilesFixture(): ProfilesFixture {
  let pki: TestPki | undefined;
  let agents: AgentPool | undefined;
  let deps: InvokeDeps | undefined;
  const profiles = new Map<string, LoadedProfile>();
  const servers: TestServer[] = [];
  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await pki?.cleanup();
  });
  beforeEach(() => {
    agents = new AgentPool();
    deps = profileDeps(profiles, agents);
  });
  afterEach(() => agents?.destroy());
  return {
    get pki() {
      return hookValue(pki, 'profiles fixture');
    },
    profiles,
    get agents() {
      return hookValue(agents, 'profiles fixture');
    },
    get deps() {
      return hookValue(deps, 'profiles fixture');
    },
    async load(name, doc, options) {
      profiles.set(name, await loadProfile(hookValue(pki, 'profiles fixture').profile(name, doc), options));
    },
    track(s) {
      servers.push(s);
      return s;
    },
  };
}
