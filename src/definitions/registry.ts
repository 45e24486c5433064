import type { CrlFetcher } from '../pki/crl-fetch.js';
import { join, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { loadProfilesDir, profileName } from './profiles.js';
import type { LoadedProfile } from '../pki/types.js';
import { duplicateNodeError, loadNodesDir } from './nodes.js';
import type { NodeDefinition } from './types.js';

/** Whether `file` comes before `other` in the order the nodes directory is loaded in at start (Array#sort's: UTF-16 code units, as `<`). */
function firstByName(file: string, other: string): boolean {
  return file < other;
}

/** A problem found while loading definitions: reported, the rest keeps working. */
export interface LoadProblem {
  kind: 'node' | 'profile';
  file: string;
  error: InvalidInputError;
}

/**
 * Node definitions and certificate profiles of a worker, loaded and validated at start and
 * replaced file by file by the watchers. Lookups never do I/O or node-forge work.
 */
export class Registry {
  private constructor(
    readonly nodes: Map<string, NodeDefinition>,
    readonly profiles: Map<string, LoadedProfile>,
    private readonly profileErrors: Map<string, InvalidInputError>,
    /**
     * Profile name → why its file is not in use and no earlier version of it is: failed at start,
     * or added (or failed) later without ever loading. A profile running on its last good bundle
     * is reported through staleProfiles instead.
     */
    private readonly profileProblems: Map<string, LoadProblem>,
    readonly profilesDir: string,
    readonly nodesDir: string,
    /** Node file → the id it defines, for the nodes in use. */
    private readonly nodeFiles: Map<string, string>,
    /** Node file → why its current text is not in use (at start or on reload). */
    private readonly nodeErrors: Map<string, InvalidInputError>,
  ) {}

  private readonly reloadFailures = new Map<string, { at: string; code: string; message: string }>();
  /** The nodes or profiles directory that cannot be read (every file of it is out of use), by kind. */
  private readonly directoryProblems = new Map<LoadProblem['kind'], LoadProblem>();
  /** Node id → why it went out of use (its file was removed, or now defines another id). */
  private readonly removedNodes = new Map<string, InvalidInputError>();

  static async load(nodesDir: string, profilesDir: string, options: { env?: NodeJS.ProcessEnv; now?: Date; crlFetcher?: CrlFetcher } = {}): Promise<Registry> {
    const [nodes, profiles] = await Promise.all([loadNodesDir(nodesDir), loadProfilesDir(profilesDir, options)]);
    const profileErrors = new Map<string, InvalidInputError>();
    const profileProblems = new Map<string, LoadProblem>();
    for (const { file, error } of profiles.errors) {
      const name = profileName(file);
      profileErrors.set(name, error);
      profileProblems.set(name, { kind: 'profile', file, error });
    }
    const nodeErrors = new Map(nodes.errors.map((e) => [e.file, e.error]));
    return new Registry(nodes.nodes, profiles.profiles, profileErrors, profileProblems, resolve(profilesDir), resolve(nodesDir), nodes.files, nodeErrors);
  }

  /**
   * What keeps definitions from being used, as of now: node files that fail to load (the last
   * good definition of a file may still be in use), profiles that failed at start, and nodes
   * naming a profile that does not exist.
   */
  get problems(): LoadProblem[] {
    const problems: LoadProblem[] = [...this.directoryProblems.values()];
    problems.push(...[...this.nodeErrors].map(([file, error]) => ({ kind: 'node' as const, file, error })));
    problems.push(...this.profileProblems.values());
    const fileOf = new Map([...this.nodeFiles].map(([file, id]) => [id, file]));
    for (const node of this.nodes.values()) {
      if (!this.profiles.has(node.tls.profile) && !this.profileErrors.has(node.tls.profile)) {
        problems.push({
          kind: 'node',
          file: fileOf.get(node.id) ?? node.id,
          error: new InvalidInputError('SVCNODE_UNKNOWN_PROFILE', `node "${node.id}" uses profile "${node.tls.profile}", which is not in ${this.profilesDir}`, {
            field: '/tls/profile',
            hint: `add ${join(this.profilesDir, `${node.tls.profile}.json`)} or fix tls.profile`,
          }),
        });
      }
    }
    return problems;
  }

  /** The id the file's node in use has, if any. */
  nodeIdOf(file: string): string | undefined {
    return this.nodeFiles.get(file);
  }

  /** Node files whose current text is not in use (retried when another file gives up an id). */
  failedNodeFiles(): string[] {
    return [...this.nodeErrors.keys()];
  }

  /**
   * Put a file's freshly loaded node in use; clears the file's recorded failure. If the file
   * defined another id before, that id goes out of use. When another file defines the id, the
   * file first in name order has it, as at start, so every worker uses the same file whatever it
   * saw first: a later name throws (changing nothing), an earlier one takes the id over and the
   * other file becomes a problem (`displaced`). Returns what the id's definition was before.
   */
  replaceNode(file: string, node: NodeDefinition): { previous: NodeDefinition | undefined; droppedId: string | undefined; displaced?: string } {
    const owner = [...this.nodeFiles].find(([f, id]) => id === node.id && f !== file)?.[0];
    if (owner !== undefined && !firstByName(file, owner)) throw duplicateNodeError(file, node.id, owner);
    let displaced: { file: string; previous: NodeDefinition | undefined } | undefined;
    if (owner !== undefined) {
      displaced = { file: owner, previous: this.nodes.get(node.id) };
      this.nodeFiles.delete(owner);
      this.nodeErrors.set(owner, duplicateNodeError(owner, node.id, file));
    }
    const oldId = this.nodeFiles.get(file);
    const previous = oldId === undefined ? undefined : this.nodes.get(oldId);
    const droppedId = oldId !== undefined && oldId !== node.id ? oldId : undefined;
    if (droppedId !== undefined) this.dropNode(droppedId, new InvalidInputError('SVCNODE_NODE_REMOVED', `node "${droppedId}" was removed: ${file} now defines node "${node.id}"`, { file, field: '/nodeId', hint: 'restore the file or stop enqueueing this node' }));
    this.nodes.set(node.id, node);
    this.nodeFiles.set(file, node.id);
    this.nodeErrors.delete(file);
    this.removedNodes.delete(node.id);
    if (displaced) return { previous: displaced.previous, droppedId, displaced: displaced.file };
    return { previous: droppedId === undefined ? previous : undefined, droppedId };
  }

  /** A node file failed to (re)load: its last good definition, if any, stays in use; the failure is a problem until the file loads. */
  recordNodeFailure(file: string, error: InvalidInputError): NodeDefinition | undefined {
    this.nodeErrors.set(file, error);
    const id = this.nodeFiles.get(file);
    return id === undefined ? undefined : this.nodes.get(id);
  }

  /** A node file was removed: its node goes out of use (jobs answer SVCNODE_NODE_REMOVED) and its problem, if any, goes. Returns the removed id. */
  removeNodeFile(file: string): string | undefined {
    this.nodeErrors.delete(file);
    const id = this.nodeFiles.get(file);
    if (id === undefined) return undefined;
    this.nodeFiles.delete(file);
    this.dropNode(id, new InvalidInputError('SVCNODE_NODE_REMOVED', `node "${id}" was removed: ${file} no longer exists`, { file, field: '/nodeId', hint: 'restore the file or stop enqueueing this node' }));
    return id;
  }

  private dropNode(id: string, why: InvalidInputError): void {
    this.nodes.delete(id);
    this.removedNodes.set(id, why);
  }

  /** Put a freshly loaded profile in use (rotation); clears a recorded load failure. */
  replaceProfile(profile: LoadedProfile): void {
    this.profiles.set(profile.name, profile);
    this.profileErrors.delete(profile.name);
    this.profileProblems.delete(profile.name);
    this.reloadFailures.delete(profile.name);
  }

  /**
   * A profile file failed to (re)load. With a last good version, that one stays in use and the
   * failure is reported as stale; without one, calls using the profile end as invalid_input and
   * the file is a problem until it loads. Returns whether a last good version stays in use.
   */
  recordProfileFailure(name: string, file: string, error: InvalidInputError): boolean {
    if (this.profiles.has(name)) {
      this.reloadFailures.set(name, { at: new Date().toISOString(), code: error.code, message: error.message });
      return true;
    }
    this.profileErrors.set(name, error);
    this.profileProblems.set(name, { kind: 'profile', file, error });
    return false;
  }

  /**
   * A profile's file was removed: its nodes stop calling with the removed identity and answer
   * invalid_input until the file is back. Returns the profile that was in use, if any.
   */
  removeProfile(name: string, file: string): LoadedProfile | undefined {
    const previous = this.profiles.get(name);
    this.profiles.delete(name);
    this.profileProblems.delete(name);
    this.reloadFailures.delete(name);
    if (previous === undefined) {
      // It never loaded: nothing was in use, and its problem goes with the file.
      this.profileErrors.delete(name);
      return undefined;
    }
    const error = new InvalidInputError('SVCNODE_PROFILE_REMOVED', `profile removed: ${file} no longer exists`, { file, hint: `restore ${file}, or point the nodes using "${name}" at another profile` });
    this.profileErrors.set(name, error);
    this.reloadFailures.set(name, { at: new Date().toISOString(), code: error.code, message: error.message });
    return previous;
  }

  /**
   * The nodes or profiles directory cannot be read (`error`), and its files are being taken out of
   * use: a problem (so /healthz is degraded) until it can be read again (`undefined`).
   */
  setDirectoryProblem(kind: LoadProblem['kind'], error: InvalidInputError | undefined): void {
    if (error) this.directoryProblems.set(kind, { kind, file: kind === 'node' ? this.nodesDir : this.profilesDir, error });
    else this.directoryProblems.delete(kind);
  }

  /** Whether the profile runs on its last good bundle because a newer one failed to load. */
  isStale(name: string): boolean {
    return this.reloadFailures.has(name);
  }

  /** Profiles running on their last good bundle because a newer one failed to load, or removed ones (code SVCNODE_PROFILE_REMOVED). */
  staleProfiles(): { name: string; at: string; code: string; message: string }[] {
    return [...this.reloadFailures].map(([name, f]) => ({ name, ...f }));
  }

  /** The node, or an InvalidInputError naming what is wrong. */
  node(nodeId: string): NodeDefinition {
    const node = this.nodes.get(nodeId);
    if (node) return node;
    const removed = this.removedNodes.get(nodeId);
    if (removed) throw removed;
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
