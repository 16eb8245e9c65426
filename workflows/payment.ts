import { defineSignal } from '@temporalio/workflow';
import type { PaymentSettlement } from '../domain/payment';

/** Sent by the payment webhook to whichever workflow owns a pending charge. */
export const paymentSettledSignal = defineSignal<[PaymentSettlement]>('paymentSettled');
