/** A transfer of a task's code to a node, or of finished results from one, as it starts. */
export interface TransferStart {
  direction: 'send' | 'receive';
  node: string;
  /** The tasks whose code or results travel. */
  tasks: readonly string[];
  /** Bytes it carries in all, tar headers included. */
  total: number;
}

/** One transfer under way: told of every chunk as it moves (so it must stay cheap), and once when it ends. */
export interface TransferTicker {
  add(bytes: number): void;
  end(ok: boolean): void;
}

/** Shows transfers as they go; the CLI decides how (a bar, now and then a line) or whether at all. */
export type OnTransfer = (start: TransferStart) => TransferTicker;

/** A transfer's ticker once its tasks and size are known. */
export type TrackTransfer = (tasks: readonly string[], total: number) => TransferTicker;

/** The tracker of transfers with `node` one way, or nothing when no one shows them (--quiet, --json). */
export function trackTransfers(onTransfer: OnTransfer | undefined, direction: TransferStart['direction'], node: string): TrackTransfer | undefined {
  return onTransfer && ((tasks, total) => onTransfer({ direction, node, tasks, total }));
}
