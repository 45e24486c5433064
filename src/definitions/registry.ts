import type { CrlFetcher } from '../pki/crl-fetch.js';
import { join, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { loadProfilesDir } from './profiles.js';
import type { LoadedProfile } from '../pki/types.js';
import { loadNodesDir } from './nodes.js';
import type { NodeDefinition } from './types.js';

/** A problem found while loading definitions: reported, the rest keeps working. */
export interface LoadProblem {
  kind: 'node' | 'profile';
  file: string;
  error: InvalidInputError;
}

/**
 * Node definitions and certificate profiles of a worker, loaded and validated once at start.
 * Lookups never do I/O or node-forge work.
 */
export class Registry {
  private constructor(
    readonly nodes: Map<string, NodeDefinition>,
    readonly profiles: Map<string, LoadedProfile>,
    private readonly profileErrors: Map<string, InvalidInputError>,
    readonly problems: LoadProblem[],
    readonly profilesDir: string,
  ) {}

  private readonly reloadFailures = new Map<string, { at: string; code: string; message: string }>();

  static async load(nodesDir: string, profilesDir: string, options: { env?: NodeJS.ProcessEnv; now?: Date; crlFetcher?: CrlFetcher } = {}): Promise<Registry> {
    const [nodes, profiles] = await Promise.all([loadNodesDir(nodesDir), loadProfilesDir(profilesDir, options)]);
    const profileErrors = new Map<string, InvalidInputError>();
    const problems: LoadProblem[] = [
      ...nodes.errors.map((e) => ({ kind: 'node' as const, ...e })),
      ...profiles.errors.map((e) => ({ kind: 'profile' as const, ...e })),
    ];
    for (const { file, error } of profiles.errors) {
      const name = file.replace(/^.*\//, '').replace(/\.json$/i, '');
      profileErrors.set(name, error);
    }
    const registry = new Registry(nodes.nodes, profiles.profiles, profileErrors, problems, resolve(profilesDir));
    for (const node of nodes.nodes.values()) {
      if (!profiles.profiles.has(node.tls.profile) && !profileErrors.has(node.tls.profile)) {
        problems.push({
          kind: 'node',
          file: node.id,
          error: new InvalidInputError('SVCNODE_UNKNOWN_PROFILE', `node "${node.id}" uses profile "${node.tls.profile}", which is not in ${registry.profilesDir}`, {
            field: '/tls/profile',
            hint: `add ${join(registry.profilesDir, `${node.tls.profile}.json`)} or fix tls.profile`,
          }),
        });
      }
    }
    return registry;
  }

  /** Put a freshly loaded profile in use (rotation); clears a recorded load failure. */
  replaceProfile(profile: LoadedProfile): void {
    this.profiles.set(profile.name, profile);
    this.profileErrors.delete(profile.name);
    this.reloadFailures.delete(profile.name);
  }

  /**
   * A profile failed to (re)load. With a last good version, that one stays in use and the
   * failure is only reported; without one, calls using the profile end as invalid_input.
   */
  recordProfileFailure(name: string, error: InvalidInputError): void {
    if (this.profiles.has(name)) this.reloadFailures.set(name, { at: new Date().toISOString(), code: error.code, message: error.message });
    else this.profileErrors.set(name, error);
  }

  /**
   * A profile's file was removed: its nodes stop calling with the removed identity and answer
   * invalid_input until the file is back. Returns the profile that was in use, if any.
   */
  removeProfile(name: string, file: string): LoadedProfile | undefined {
    const previous = this.profiles.get(name);
    this.profiles.delete(name);
    this.reloadFailures.delete(name);
    const error = new InvalidInputError('SVCNODE_PROFILE_REMOVED', `profile removed: ${file} no longer exists`, { file, hint: `restore ${file}, or point the nodes using "${name}" at another profile` });
    this.profileErrors.set(name, error);
    this.reloadFailures.set(name, { at: new Date().toISOString(), code: error.code, message: error.message });
    return previous;
  }

  /** Profiles running on their last good bundle because a newer one failed to load, or removed ones. */
  staleProfiles(): { name: string; at: string; code: string; message: string }[] {
    return [...this.reloadFailures].map(([name, f]) => ({ name, ...f }));
  }

  /** The node, or an InvalidInputError naming what is wrong. */
  node(nodeId: string): NodeDefinition {
    const node = this.nodes.get(nodeId);
    if (node) return node;
    throw new InvalidInputError('SVCNODE_UNKNOWN_NODE', `unknown node "${nodeId}": no valid definition with this id is loaded`, {
      field: '/nodeId',
      hint: 'check the nodeId, and the worker log for definitions that failed to load',
    });
  }

  /** The profile, or the error that kept it from loading. */
  profile(name: string): LoadedProfile {
    const profile = this.profiles.get(name);
    if (profile) return profile;
    const error = this.profileErrors.get(name);
    if (error?.code === 'SVCNODE_PROFILE_REMOVED') throw error;
    if (error) {
      throw new InvalidInputError(error.code, `profile "${name}" failed to load: ${error.message}`, { file: error.file, hint: error.hint ?? 'run `svcnode certs verify` on it' });
    }
    throw new InvalidInputError('SVCNODE_UNKNOWN_PROFILE', `unknown profile "${name}" (not in ${this.profilesDir})`, {
      field: '/tls/profile',
      hint: `add ${join(this.profilesDir, `${name}.json`)}`,
    });
  }
}
