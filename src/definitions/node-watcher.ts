import { DirPoller, fileStamp, transientReadFailure, type DirectoryEvents } from './dir-poller.js';
import type { InvalidInputError } from '../errors.js';
import { nodeLoadError, readNodeFile } from './nodes.js';
import type { Registry } from './registry.js';
import type { NodeDefinition } from './types.js';

/** What a NodeWatcher reports; an unreadable nodes directory takes every node of it out of use (`removed` follows for each file). */
export interface NodeWatcherEvents extends DirectoryEvents {
  /**
   * A file's node was put in use; `previous` is the definition it replaced (undefined for a new
   * node), `droppedId` an id the file no longer defines, `displaced` the file that had the id
   * before (this file comes first by name).
   */
  loaded(file: string, node: NodeDefinition, previous: NodeDefinition | undefined, droppedId: string | undefined, displaced?: string): void;
  /** A new or changed file failed to load; `lastGood` is the file's definition that stays in use, if any. */
  failed(file: string, error: InvalidInputError, lastGood: NodeDefinition | undefined): void;
  /** A node file disappeared; `nodeId` is the node that went out of use, if the file had one in use. */
  removed(file: string, nodeId: string | undefined): void;
}

/**
 * Watches the nodes directory by polling, as ProfileWatcher does for profiles. A new or changed
 * file is read and validated off the call path (the same checks as at start); a valid one
 * replaces the file's node, an invalid one leaves its last good definition in use and is reported.
 * A removed file takes its node out of use.
 */
export class NodeWatcher extends DirPoller {
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly registry: Registry,
    private readonly events: NodeWatcherEvents,
    options: { intervalMs: number },
  ) {
    super(options.intervalMs, 'node', events, (kind, error) => registry.setDirectoryProblem(kind, error));
  }

  protected dir(): string {
    return this.registry.nodesDir;
  }

  /**
   * Record the files as the registry loaded them, then poll every `intervalMs`. A file the
   * registry does not know (added since it loaded) gets no baseline, so the first round loads it.
   */
  async start(): Promise<void> {
    for (const file of (await this.files()) ?? []) {
      const known = this.registry.nodeIdOf(file) !== undefined || this.registry.failedNodeFiles().includes(file);
      const print = known ? await fileStamp(file) : undefined;
      if (print !== undefined) this.seen.set(file, print);
    }
    this.startPolling();
  }

  protected async round(): Promise<void> {
    const files = await this.listing();
    if (!files) return;
    const present = new Set(files);
    let released = false;
    for (const file of [...this.seen.keys()]) {
      if (present.has(file)) continue;
      this.seen.delete(file);
      const nodeId = this.registry.removeNodeFile(file);
      released ||= nodeId !== undefined;
      this.events.removed(file, nodeId);
    }
    if (released) this.retryFailed();
    released = false;
    for (const file of files) {
      const print = await fileStamp(file);
      // Gone between the listing and now: judged removed in the next round.
      if (print === undefined || this.seen.get(file) === print) continue;
      this.seen.set(file, print);
      released = (await this.load(file)) || released;
    }
    if (released) this.retryFailed();
  }

  /** A file refused for a duplicate id may load now that another file gave the id up: judge failed files afresh. */
  private retryFailed(): void {
    for (const file of this.registry.failedNodeFiles()) this.seen.delete(file);
  }

  /** Load one new or changed file; true when an id went out of use. */
  private async load(file: string): Promise<boolean> {
    let change: ReturnType<Registry['replaceNode']>;
    let node: NodeDefinition;
    try {
      node = await readNodeFile(file);
      const inUse = this.registry.nodes.get(node.id);
      if (inUse !== undefined && this.registry.nodeIdOf(file) === node.id && JSON.stringify(inUse) === JSON.stringify(node)) {
        // Touched, or rewritten with the same text: the definition in use (and its caches) stays.
        this.registry.replaceNode(file, inUse);
        return false;
      }
      change = this.registry.replaceNode(file, node);
    } catch (error) {
      // Out of descriptors, or a hung mount: read again next round rather than when the file next changes.
      if (transientReadFailure(error)) this.seen.delete(file);
      const invalid = nodeLoadError(file, error);
      const lastGood = this.registry.recordNodeFailure(file, invalid);
      this.events.failed(file, invalid, lastGood);
      return false;
    }
    // Outside the try: a failing event handler is a defect of its own, not a bad file.
    this.events.loaded(file, node, change.previous, change.droppedId, change.displaced);
    return change.droppedId !== undefined;
  }
}
