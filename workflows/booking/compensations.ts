/**
 * A saga's undo list: each step that changed the world adds what reverses it, and a failure
 * runs them newest first. A compensation that throws stops the ones after it and fails the
 * caller, so compensations that must not (a notice, a refund left for staff) catch their own.
 */
export class Compensations {
  private readonly steps: Array<() => Promise<void>> = [];

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  get size(): number {
    return this.steps.length;
  }

  async runInReverse(): Promise<void> {
    for (const step of this.steps.reverse()) await step();
  }
}
