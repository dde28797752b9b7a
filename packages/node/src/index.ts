export { main, VERSION, type NodeIo } from './cli.js';
export { runTask } from './run.js';
export { acceptTask } from './accept.js';
export { reportTasks } from './report.js';
export { taskPaths, taskDir, tasksRoot, expandHome } from './paths.js';
