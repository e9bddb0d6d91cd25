// The bundled services, by the name RUNTIME_SERVICES uses. Adding a service
// is its folder plus one line here (see README.md "Writing a service").
import { auditService } from './audit/plugin.js';
import { authService } from './auth/plugin.js';
import type { ServiceDefinition } from './base/service.js';
import { chatService } from './chat/plugin.js';
import { gamingService } from './gaming/plugin.js';
import { mediaService } from './media/plugin.js';

export const SERVICES: readonly ServiceDefinition[] = [
  auditService,
  authService,
  chatService,
  gamingService,
  mediaService,
];
