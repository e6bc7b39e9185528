// The DBXWebSocket class of DBX's WebSocket documentation
// (docs/pages/docs/api/websocket/connection.mdx in effortlesslabs/dbx),
// completed where the documentation leaves "the rest of the
// implementation" out, and nothing more: query parameters api_key and
// client_id, requests {id, method, params, timestamp} matched to their
// responses by id with a 30 s timeout, heartbeats every 30 s, reconnection
// with exponential backoff, connection state, and events (connect,
// disconnect, heartbeat, message). Completions: the heartbeat interval,
// the request timeout and the backoff's base delay are options (the
// documentation's values are the defaults); a rejected request's Error
// carries the error's code; connect and disconnect are emitted, as the
// documentation's usage example expects; disconnect() stops reconnecting.
// It uses the browser's WebSocket API (in Node 20: node --experimental-websocket).

export class DBXWebSocket {
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.ws = null;
    this.messageId = 0;
    this.pendingRequests = new Map();
    this.eventHandlers = new Map();
    this.state = 'disconnected'; // disconnected, connecting, connected, reconnecting
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = options.maxReconnectAttempts ?? 5;
    this.heartbeatInterval = null;
    this.closing = false;
  }

  getState() {
    return this.state;
  }

  isConnected() {
    return this.state === 'connected' && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.state === 'connecting' || this.state === 'connected') {
      return Promise.resolve();
    }
    this.state = 'connecting';
    this.closing = false;
    return new Promise((resolve, reject) => {
      const wsUrl = new URL(this.url);

      // Add query parameters
      if (this.options.apiKey) {
        wsUrl.searchParams.set('api_key', this.options.apiKey);
      }
      if (this.options.clientId) {
        wsUrl.searchParams.set('client_id', this.options.clientId);
      }
      if (this.options.version) {
        wsUrl.searchParams.set('version', this.options.version);
      }

      const ws = new WebSocket(wsUrl.toString());
      this.ws = ws;
      let opened = false;

      ws.onopen = () => {
        opened = true;
        this.state = 'connected';
        this.reconnectAttempts = 0;
        this.startHeartbeat();
        resolve();
        this.emit('connect');
      };

      ws.onmessage = (event) => {
        this.handleMessage(JSON.parse(event.data));
      };

      ws.onclose = (event) => {
        this.stopHeartbeat();
        if (this.ws !== ws) return;
        this.state = 'disconnected';
        // Requests sent on this connection will not be answered.
        for (const [id, { reject: fail, timer }] of this.pendingRequests) {
          clearTimeout(timer);
          fail(new Error(`connection closed (${event.code}) before the reply to ${id}`));
        }
        this.pendingRequests.clear();
        if (!opened) return; // connect() rejects; a reconnect loop tries again
        if (event.code !== 1000) {
          this.handleError('disconnect', { code: event.code, reason: event.reason });
        }
        this.emit('disconnect', { code: event.code, reason: event.reason });
        if (!this.closing) this.reconnect();
      };

      ws.onerror = (error) => {
        if (!opened) {
          this.state = 'disconnected';
          this.handleError('connection', error);
          reject(error);
        }
      };
    });
  }

  disconnect() {
    this.closing = true;
    if (this.ws) {
      this.ws.close(1000, 'Client disconnect');
    }
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeatInterval = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({
          type: 'heartbeat',
          timestamp: new Date().toISOString(),
        }));
      }
    }, this.options.heartbeatInterval ?? 30000); // Send heartbeat every 30 seconds
  }

  stopHeartbeat() {
    if (this.heartbeatInterval) {
      clearInterval(this.heartbeatInterval);
      this.heartbeatInterval = null;
    }
  }

  async reconnect() {
    const maxRetries = this.maxReconnectAttempts;
    const baseDelay = this.options.reconnectDelay ?? 1000;
    this.state = 'reconnecting';

    for (let attempt = 0; attempt < maxRetries && !this.closing; attempt++) {
      const delay = baseDelay * Math.pow(2, attempt);
      this.reconnectAttempts = attempt + 1;
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.closing) return;
      try {
        this.state = 'disconnected';
        await this.connect();
        return;
      } catch (error) {
        this.handleError('reconnect', error);
      }
    }
    this.state = 'disconnected';
    this.handleError('reconnect', new Error('Failed to reconnect after maximum attempts'));
  }

  on(event, handler) {
    if (!this.eventHandlers.has(event)) {
      this.eventHandlers.set(event, []);
    }
    this.eventHandlers.get(event).push(handler);
  }

  off(event, handler) {
    if (this.eventHandlers.has(event)) {
      const handlers = this.eventHandlers.get(event);
      const index = handlers.indexOf(handler);
      if (index > -1) {
        handlers.splice(index, 1);
      }
    }
  }

  emit(event, data) {
    if (this.eventHandlers.has(event)) {
      this.eventHandlers.get(event).forEach((handler) => {
        try {
          handler(data);
        } catch (error) {
          console.error(`Error in event handler for ${event}:`, error);
        }
      });
    }
  }

  onError(type, handler) {
    if (!this.errorHandlers) this.errorHandlers = new Map();
    this.errorHandlers.set(type, handler);
  }

  handleError(type, error) {
    if (this.errorHandlers && this.errorHandlers.has(type)) {
      this.errorHandlers.get(type)(error);
    } else if (!this.options.quiet) {
      console.error(`Unhandled ${type} error:`, error);
    }
  }

  handleMessage(data) {
    if (data.type === 'heartbeat') {
      this.emit('heartbeat', data);
      return;
    }

    if (data.id && this.pendingRequests.has(data.id)) {
      const { resolve, reject, timer } = this.pendingRequests.get(data.id);
      this.pendingRequests.delete(data.id);
      clearTimeout(timer);

      if (data.error) {
        const err = new Error(data.error.message);
        err.code = data.error.code;
        err.details = data.error;
        reject(err);
      } else {
        resolve(data.result);
      }
    } else {
      // Handle unsolicited messages (notifications, etc.)
      this.emit('message', data);
    }
  }

  async sendRequest(method, params = {}) {
    if (!this.isConnected()) {
      throw new Error('WebSocket not connected');
    }

    const id = `msg_${Date.now()}_${Math.random().toString(36).substr(2, 9)}`;

    return new Promise((resolve, reject) => {
      const message = {
        id,
        method,
        params,
        timestamp: new Date().toISOString(),
      };

      // Set timeout for request
      const timer = setTimeout(() => {
        if (this.pendingRequests.has(id)) {
          this.pendingRequests.delete(id);
          reject(new Error('Request timeout'));
        }
      }, this.options.requestTimeout ?? 30000); // 30 second timeout

      this.pendingRequests.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify(message));
    });
  }

  async batchOperations(operations) {
    return this.sendRequest('batch', { operations });
  }
}
